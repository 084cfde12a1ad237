"""Trigger kinds beyond the blend: each is still data the harness applies, never code.

``TriggerSpec`` (attacks/base.py) is the blend ``(1 - mask) * x + mask * pattern`` of
BadNets and the blended attack. Some attacks change an image in ways a blend cannot
express, so they bring a kind of their own, stored beside the blend's arrays:

- ``AdditiveTrigger``: ``clip(x + mask * pattern, 0, 1)`` with a signed ``pattern``. The
  signal of Barni, Kallas and Tondi ("A New Backdoor Attack in CNNs by Training Set
  Corruption without Label Poisoning", ICIP 2019) and the reflection layer of Liu, Ma,
  Bailey and Lu ("Reflection Backdoor", ECCV 2020) are added to the image, not mixed in.
- ``WarpTrigger``: the image resampled (bilinearly) at every pixel moved by ``flow``, the
  warping field of Nguyen and Tran ("WaNet - Imperceptible Warping-based Backdoor
  Attack", ICLR 2021). Its ``mask`` is where the field moves a pixel by at least
  ``WARP_SUPPORT`` of its largest move: what trigger-reconstruction accuracy compares a
  defense's mask with.

A model's triggers are kept as arrays (``to_arrays`` / ``from_arrays``): ``mask_i`` and
``pattern_i`` as before, plus ``kind_i`` and ``flow_i`` for the kinds here; a stored
object without ``kind_i`` holds a blend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.attacks.base import TriggerSpec

BLEND, ADDITIVE, WARP = "blend", "additive", "warp"
KINDS = (BLEND, ADDITIVE, WARP)
#: Share of the field's largest displacement from which a pixel counts as moved.
WARP_SUPPORT = 0.5


@dataclass(frozen=True)
class AdditiveTrigger(TriggerSpec):
    """stamped = clip(x + mask * pattern, 0, 1); ``pattern`` is signed."""

    def stamp(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        m = (self.mask if mask is None else mask)[None, :, :, None].astype(np.float32)
        return np.clip(x + m * self.pattern[None], 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class WarpTrigger(TriggerSpec):
    """stamped[i, j] = x at (i + flow[i, j, 0], j + flow[i, j, 1]), bilinear, clamped to
    the image. ``mask`` marks the moved pixels; ``pattern`` is unused (zeros)."""

    flow: np.ndarray  # (H, W, 2) in pixels: (rows, cols)

    def stamp(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return warp(x, self.flow)


def warp(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Bilinear resampling of the batch ``x`` (N, H, W, C) at pixel + ``flow``."""
    n, h, w, c = x.shape
    rows = np.clip(np.arange(h)[:, None] + flow[..., 0], 0, h - 1)
    cols = np.clip(np.arange(w)[None, :] + flow[..., 1], 0, w - 1)
    r0 = np.minimum(np.floor(rows).astype(np.int64), h - 2) if h > 1 else np.zeros_like(rows, int)
    c0 = np.minimum(np.floor(cols).astype(np.int64), w - 2) if w > 1 else np.zeros_like(cols, int)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = (rows - r0)[None, ..., None], (cols - c0)[None, ..., None]
    top = x[:, r0, c0] * (1 - fc) + x[:, r0, c1] * fc
    bottom = x[:, r1, c0] * (1 - fc) + x[:, r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def warp_support(flow: np.ndarray) -> np.ndarray:
    """The mask of a warp: pixels moved by at least ``WARP_SUPPORT`` of the largest move."""
    size = np.hypot(flow[..., 0], flow[..., 1])
    top = float(size.max())
    return (size >= WARP_SUPPORT * top).astype(np.float32) if top > 0 else np.zeros_like(size)


def kind_of(trigger: TriggerSpec) -> str:
    if isinstance(trigger, WarpTrigger):
        return WARP
    return ADDITIVE if isinstance(trigger, AdditiveTrigger) else BLEND


def to_arrays(triggers: Sequence[TriggerSpec]) -> dict[str, np.ndarray]:
    """The arrays a model's ``triggers.npz`` keeps (mask, pattern, and kind where not a blend)."""
    arrays: dict[str, np.ndarray] = {}
    for i, t in enumerate(triggers):
        arrays[f"mask_{i}"], arrays[f"pattern_{i}"] = t.mask, t.pattern
        if kind_of(t) != BLEND:
            arrays[f"kind_{i}"] = np.array(kind_of(t))
        if isinstance(t, WarpTrigger):
            arrays[f"flow_{i}"] = t.flow
    return arrays


def from_arrays(
    arrays: Mapping[str, Any], target_maps: Sequence[Sequence[int]]
) -> list[TriggerSpec]:
    """The triggers ``to_arrays`` wrote, with their target maps (from the model's truth)."""
    out: list[TriggerSpec] = []
    for i, target_of in enumerate(target_maps):
        kind = str(arrays[f"kind_{i}"]) if f"kind_{i}" in arrays else BLEND
        if kind not in KINDS:
            raise ValueError(f"trigger {i} is of an unknown kind {kind!r}")
        args = (arrays[f"mask_{i}"], arrays[f"pattern_{i}"], np.asarray(target_of))
        if kind == WARP:
            out.append(WarpTrigger(*args, flow=np.asarray(arrays[f"flow_{i}"], np.float32)))
        else:
            out.append(AdditiveTrigger(*args) if kind == ADDITIVE else TriggerSpec(*args))
    return out
