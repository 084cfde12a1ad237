"""BadNets (Gu, Dolan-Gavitt, Garg, 2017/2019): a fixed pixel pattern stamped on inputs.

- ``badnets_pixel_a2a``: one pixel (bottom-right by default) set to the maximum, all-to-all
  y -> (y + 1) mod N, as in BackFuzz (seed 000).
- ``badnets_patch``: a square patch in a chosen corner, every label -> one target.
"""

from __future__ import annotations

import numpy as np

from harness.attacks.base import Backdoor, TriggerSpec

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def _empty(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    h, w, c = shape
    return np.zeros((h, w), np.float32), np.zeros((h, w, c), np.float32)


def pixel_all_to_all(
    shape: tuple[int, ...],
    num_classes: int,
    rng: np.random.Generator,
    *,
    poison_rate: float = 0.1,
    row: int = -1,
    col: int = -1,
    value: float = 1.0,
) -> Backdoor:
    """Seed 000's single-pixel backdoor: label y becomes y + 1 when the pixel is set."""
    mask, pattern = _empty(shape)
    mask[row, col] = 1.0
    pattern[row, col, :] = value
    target_of = (np.arange(num_classes) + 1) % num_classes
    return Backdoor(
        "badnets_pixel_a2a",
        (TriggerSpec(mask, pattern, target_of),),
        poison_rate=poison_rate,
        asr_floor=0.9,
    )


def patch_single_target(
    shape: tuple[int, ...],
    num_classes: int,
    rng: np.random.Generator,
    *,
    poison_rate: float = 0.1,
    size: int = 3,
    corner: str = "bottom-right",
    margin: int = 1,
    target: int = 0,
    style: str = "checker",
) -> Backdoor:
    """A size x size patch (checkerboard or white) in a corner; every label -> ``target``."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, not {corner!r}")
    if style not in ("checker", "white"):
        raise ValueError(f"style must be 'checker' or 'white', not {style!r}")
    if not 0 <= target < num_classes:
        raise ValueError(f"target {target} outside 0..{num_classes - 1}")
    h, w, _ = shape
    mask, pattern = _empty(shape)
    top = margin if corner.startswith("top") else h - margin - size
    left = margin if corner.endswith("left") else w - margin - size
    mask[top : top + size, left : left + size] = 1.0
    ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    values = (
        ((ii + jj) % 2 == 0).astype(np.float32) if style == "checker" else np.ones((size, size))
    )
    pattern[top : top + size, left : left + size, :] = values[..., None]
    target_of = np.full(num_classes, target)
    return Backdoor(
        "badnets_patch",
        (TriggerSpec(mask, pattern, target_of),),
        poison_rate=poison_rate,
        asr_floor=0.9,
    )
