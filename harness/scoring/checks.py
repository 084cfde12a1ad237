"""The argument checks every scoring formula runs first: array-likes made 1-D float arrays,
integer labels within range, equal lengths, finite binary labels and scores, a target map
of one target per class, rates within [0, 1], and the mean of an empty set as nan.

Apart from the formulas (``harness.scoring.metrics``) so that each formula there reads as
its definition; malformed input raises ``ValueError`` saying what is wrong
(docs/METRICS.md).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def vec(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a 1-D float array."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def ints(x: ArrayLike, name: str, low: int, high: int) -> np.ndarray:
    """``x`` as 1-D integer labels, each in ``[low, high]``."""
    a = vec(x, name)
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
        raise ValueError(f"{name} must hold integer labels")
    if a.size and (a.min() < low or a.max() > high):
        got = f"[{a.min():g}, {a.max():g}]"
        raise ValueError(f"{name} labels must lie in [{low}, {high}], got {got}")
    return a.astype(np.int64)


def same_len(*pairs: tuple[str, np.ndarray]) -> None:
    """Refuse arrays of different lengths (named in the message)."""
    lengths = {name: len(a) for name, a in pairs}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"length mismatch: {lengths}")


def binary(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and finite scores of the same length."""
    y = ints(labels, "labels", 0, 1)
    s = vec(scores, "scores")
    same_len(("labels", y), ("scores", s))
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain non-finite values; run fill_missing_scores first")
    return y, s


def targets(target_of: ArrayLike, num_classes: int) -> np.ndarray:
    """A map of each of ``num_classes`` labels to its backdoor target."""
    t = ints(target_of, "target_of", 0, num_classes - 1)
    if len(t) != num_classes:
        raise ValueError(f"target_of must have length num_classes={num_classes}, got {len(t)}")
    return t


def mean(mask: np.ndarray) -> float:
    """The share of ``mask`` that holds; nan over an empty set."""
    return float(np.mean(mask)) if mask.size else float("nan")


def rate(x: float, name: str) -> float:
    """``x`` as a float in [0, 1] (nan passes)."""
    x = float(x)
    if not math.isnan(x) and not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be a rate in [0, 1], got {x}")
    return x
