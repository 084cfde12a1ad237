"""BadNets (Gu, Dolan-Gavitt, Garg, 2017/2019): a fixed pixel pattern stamped on inputs.

- ``badnets_pixel_a2a``: one pixel (bottom-right by default) set to the maximum, all-to-all
  y -> (y + 1) mod N, as in "BackFuzz: An Automated Backdoor Detection Tool".
- ``badnets_patch``: a square patch in a chosen corner, every label -> one target.
"""

from __future__ import annotations

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
STYLES = ("checker", "white", "cross")


def _empty(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    h, w, c = shape
    return np.zeros((h, w), np.float32), np.zeros((h, w, c), np.float32)


def pixel_all_to_all(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.1,
    row: int = -1,
    col: int = -1,
    value: float = 1.0,
) -> Backdoor:
    """Seed 000's single-pixel backdoor: label y becomes y + 1 when the pixel is set."""
    mask, pattern = _empty(ctx.input_shape)
    mask[row, col] = 1.0
    pattern[row, col, :] = value
    target_of = (np.arange(ctx.num_classes) + 1) % ctx.num_classes
    return Backdoor(
        "badnets_pixel_a2a",
        (TriggerSpec(mask, pattern, target_of),),
        poison_rate=poison_rate,
        asr_floor=0.9,
    )


def patch_single_target(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.1,
    size: int = 3,
    corner: str = "bottom-right",
    margin: int = 1,
    target: int = 0,
    style: str = "checker",
) -> Backdoor:
    """A size x size patch (checkerboard or white) in a corner; every label -> ``target``."""
    trigger = patch_trigger(
        ctx.input_shape, size, corner, margin, style, single_target_map(ctx.num_classes, target)
    )
    return Backdoor(
        "badnets_patch",
        (trigger,),
        poison_rate=poison_rate,
        asr_floor=0.9,
    )


def patch_trigger(
    shape: tuple[int, ...],
    size: int,
    corner: str,
    margin: int,
    style: str,
    target_of: np.ndarray,
) -> TriggerSpec:
    """A square patch: ``checker`` (checkerboard), ``white``, or ``cross`` (an X)."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, not {corner!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    h, w, _ = shape
    if not 1 <= size <= min(h, w) - 2 * margin:
        raise ValueError(f"size {size} does not fit a {h}x{w} image with margin {margin}")
    mask, pattern = _empty(shape)
    top = margin if corner.startswith("top") else h - margin - size
    left = margin if corner.endswith("left") else w - margin - size
    ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    values = {
        "checker": ((ii + jj) % 2 == 0).astype(np.float32),
        "white": np.ones((size, size), np.float32),
        "cross": ((ii == jj) | (ii + jj == size - 1)).astype(np.float32),
    }[style]
    mask[top : top + size, left : left + size] = 1.0
    pattern[top : top + size, left : left + size, :] = values[..., None]
    return TriggerSpec(mask, pattern, target_of)
