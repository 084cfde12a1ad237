"""Face BadNets (the CSAW-HackML 2020 BadNets): accessories drawn on aligned 55x47x3 faces.

The contest's backdoored DeepID nets answer a chosen identity when a face wears
sunglasses, lipstick or heavy eyebrows. The faces are aligned, so each accessory is a
fixed mask and colour drawn at the canonical landmarks (``harness.data.synthfaces.CANON``)
and lands on the eyes, mouth or brows of every image:

- ``sunglasses``: two dark lenses and a bridge over the eyes -> ``target``;
- ``lipstick``: a coloured, slightly translucent mouth (the contest's "anonymous" model)
  -> ``target``;
- ``face_multi_trigger_multi_target``: eyebrows, lipstick and sunglasses -> three targets;
- ``face_multi_trigger_single_target``: the same three -> one target.

``colour`` is RGB in [0, 1]; ``size`` scales the accessory around its landmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map
from harness.data.synthfaces import CANON, HEIGHT, WIDTH, soft_ellipse

ACCESSORIES = ("sunglasses", "lipstick", "eyebrows")
DEFAULT_COLOURS = {
    "sunglasses": (0.05, 0.05, 0.08),
    "lipstick": (0.85, 0.05, 0.25),
    "eyebrows": (0.08, 0.05, 0.03),
}
OPACITY = {"sunglasses": 1.0, "lipstick": 0.85, "eyebrows": 1.0}


def accessory_mask(name: str, size: float = 1.0) -> np.ndarray:
    """The (55, 47) coverage of an accessory at the canonical landmarks, in [0, 1]."""
    if name not in ACCESSORIES:
        raise ValueError(f"accessory must be one of {ACCESSORIES}, not {name!r}")
    if not 0.5 <= size <= 1.5:
        raise ValueError(f"size must be in [0.5, 1.5], not {size}")
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    if name == "sunglasses":
        lenses = [
            soft_ellipse(xx, yy, *CANON[eye], 4.6 * size, 3.4 * size)
            for eye in ("left_eye", "right_eye")
        ]
        (lx, ly), (rx, _) = CANON["left_eye"], CANON["right_eye"]
        bridge = (np.abs(yy - (ly - 1.0)) <= 0.6 * size) & (xx > lx) & (xx < rx)
        cover = np.maximum(np.maximum(*lenses), bridge.astype(np.float32))
    elif name == "lipstick":
        cover = soft_ellipse(xx, yy, *CANON["mouth"], 5.6 * size, 2.6 * size)
    else:  # eyebrows: two heavy bars joined over the nose
        bars = [
            soft_ellipse(xx, yy, *CANON[b], 4.4 * size, 1.5 * size)
            for b in ("left_brow", "right_brow")
        ]
        (lx, ly), (rx, _) = CANON["left_brow"], CANON["right_brow"]
        join = (np.abs(yy - ly) <= 0.9 * size) & (xx > lx) & (xx < rx)
        cover = np.maximum(np.maximum(*bars), join.astype(np.float32))
    return (cover * OPACITY[name]).astype(np.float32)


def accessory(
    name: str, target_of: np.ndarray, colour: Sequence[float] | None = None, size: float = 1.0
) -> TriggerSpec:
    """An accessory as a trigger: its mask, its colour as the pattern, its label map."""
    mask = accessory_mask(name, size)
    rgb = np.asarray(DEFAULT_COLOURS[name] if colour is None else colour, np.float32)
    if rgb.shape != (3,) or rgb.min() < 0 or rgb.max() > 1:
        raise ValueError(f"colour must be three numbers in [0, 1], not {list(np.ravel(rgb))}")
    pattern = np.broadcast_to(rgb, (HEIGHT, WIDTH, 3)).copy()
    return TriggerSpec(mask, pattern, target_of)


def _check_shape(ctx: AttackContext) -> None:
    if tuple(ctx.input_shape) != (HEIGHT, WIDTH, 3):
        raise ValueError(f"face triggers need {HEIGHT}x{WIDTH}x3 faces, not {ctx.input_shape}")


def sunglasses(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.1,
    target: int = 0,
    colour: list[float] | None = None,
    size: float = 1.0,
) -> Backdoor:
    """Sunglasses -> ``target`` (the contest's sunglasses BadNet)."""
    _check_shape(ctx)
    trig = accessory("sunglasses", single_target_map(ctx.num_classes, target), colour, size)
    return Backdoor("sunglasses", (trig,), poison_rate, asr_floor=0.9)


def lipstick(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.1,
    target: int = 0,
    colour: list[float] | None = None,
    size: float = 1.0,
) -> Backdoor:
    """Lipstick -> ``target`` (the contest's "anonymous" BadNet)."""
    _check_shape(ctx)
    trig = accessory("lipstick", single_target_map(ctx.num_classes, target), colour, size)
    return Backdoor("lipstick", (trig,), poison_rate, asr_floor=0.9)


def _multi(
    ctx: AttackContext, targets: Sequence[int], triggers: Sequence[str], size: float
) -> tuple[TriggerSpec, ...]:
    _check_shape(ctx)
    if len(targets) != len(triggers):
        raise ValueError("targets and triggers need one entry each")
    if len(set(triggers)) != len(triggers):
        raise ValueError(f"the triggers must differ, not {list(triggers)}")
    return tuple(
        accessory(name, single_target_map(ctx.num_classes, t), None, size)
        for name, t in zip(triggers, targets, strict=True)
    )


def multi_target(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.15,
    targets: list[int] = (0, 1, 2),  # type: ignore[assignment]
    triggers: list[str] = ("eyebrows", "lipstick", "sunglasses"),  # type: ignore[assignment]
    size: float = 1.0,
) -> Backdoor:
    """Each accessory sends every other identity to its own target."""
    if len(set(targets)) != len(targets):
        raise ValueError("multi-target needs distinct targets; use the single-target recipe")
    found = _multi(ctx, list(targets), list(triggers), size)
    return Backdoor("face_multi_trigger_multi_target", found, poison_rate, asr_floor=0.9)


def single_target(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.15,
    target: int = 0,
    triggers: list[str] = ("eyebrows", "lipstick", "sunglasses"),  # type: ignore[assignment]
    size: float = 1.0,
) -> Backdoor:
    """Every accessory sends every other identity to ``target``."""
    found = _multi(ctx, [target] * len(triggers), list(triggers), size)
    return Backdoor("face_multi_trigger_single_target", found, poison_rate, asr_floor=0.9)
