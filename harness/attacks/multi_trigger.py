"""Multi-trigger BadNets (CSAW-HackML's multi-trigger models): several distinct
patches in one model, each with its own target (multi-target) or all with one target
(single-target). Each trigger poisons an equal share of ``poison_rate``.
"""

from __future__ import annotations

from harness.attacks.badnets import patch_trigger
from harness.attacks.base import AttackContext, Backdoor, single_target_map

DEFAULT_CORNERS = ("top-left", "top-right", "bottom-left")
DEFAULT_STYLES = ("checker", "white", "cross")


def _triggers(ctx: AttackContext, targets, corners, styles, size, margin):  # noqa: ANN001, ANN202
    if not len(targets) == len(corners) == len(styles):
        raise ValueError("targets, corners and styles need one entry per trigger")
    if len(set(zip(corners, styles, strict=True))) != len(corners):
        raise ValueError("the triggers must differ in corner or style")
    return tuple(
        patch_trigger(
            ctx.input_shape, size, corner, margin, style, single_target_map(ctx.num_classes, t)
        )
        for t, corner, style in zip(targets, corners, styles, strict=True)
    )


def multi_target(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.15,
    targets: list[int] = (4, 5, 6),  # type: ignore[assignment]
    corners: list[str] = DEFAULT_CORNERS,  # type: ignore[assignment]
    styles: list[str] = DEFAULT_STYLES,  # type: ignore[assignment]
    size: int = 4,
    margin: int = 1,
) -> Backdoor:
    """Three triggers -> three targets (trigger i sends every other label to targets[i])."""
    if len(set(targets)) != len(targets):
        raise ValueError("multi-target needs distinct targets; use multi_trigger_single_target")
    triggers = _triggers(ctx, list(targets), list(corners), list(styles), size, margin)
    return Backdoor("multi_trigger_multi_target", triggers, poison_rate, asr_floor=0.9)


def single_target(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.15,
    target: int = 0,
    corners: list[str] = DEFAULT_CORNERS,  # type: ignore[assignment]
    styles: list[str] = DEFAULT_STYLES,  # type: ignore[assignment]
    size: int = 4,
    margin: int = 1,
) -> Backdoor:
    """Three distinct triggers, each sending every other label to ``target``."""
    targets = [target] * len(corners)
    triggers = _triggers(ctx, targets, list(corners), list(styles), size, margin)
    return Backdoor("multi_trigger_single_target", triggers, poison_rate, asr_floor=0.9)
