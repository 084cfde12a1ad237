"""Passive checks on every raw output a worker returns, before the harness trusts it.

Each failure is an OutputError whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class OutputError(Exception):
    """A submission returned something outside the contract."""


@dataclass(frozen=True)
class DetectOutput:
    score: float
    target_labels: list[int] | None
    mask: np.ndarray | None
    pattern: np.ndarray | None


def _load_array(scratch_file: Path, what: str, max_bytes: int = 256 << 20) -> np.ndarray:
    if not scratch_file.is_file() or scratch_file.is_symlink():
        raise OutputError(f"{what} file is missing")
    if scratch_file.stat().st_size > max_bytes:
        raise OutputError(f"{what} is larger than {max_bytes} bytes")
    try:
        return np.load(scratch_file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise OutputError(f"{what} is not a plain numeric array ({exc})") from None


def detect_output(
    result: dict[str, Any], resolve: Any, input_shape: tuple[int, ...], num_classes: int
) -> DetectOutput:
    """Validate detect()'s reply; ``resolve`` maps a worker file name to a host path."""
    if result.get("type") != "Detection":
        raise OutputError(f"detect() returned {result.get('type')}, not harness.api.Detection")
    score = result.get("score")
    if not isinstance(score, float) or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise OutputError(f"detect() score is {score!r}; return a probability in [0, 1]")
    labels = result.get("target_labels")
    if labels is not None:
        bad = [
            v for v in labels if not isinstance(v, float) or v != int(v) or not 0 <= v < num_classes
        ]
        if bad:
            raise OutputError(f"target_labels {bad[:3]} are not class indices 0..{num_classes - 1}")
        labels = [int(v) for v in labels]
    mask = pattern = None
    if "trigger" in result:
        h, w, c = input_shape
        mask = _load_array(resolve(result["trigger"]["mask"]), "trigger mask").astype(np.float64)
        pattern = _load_array(resolve(result["trigger"]["pattern"]), "trigger pattern")
        if mask.shape != (h, w) or pattern.shape != (h, w, c):
            raise OutputError(
                f"trigger mask {mask.shape} / pattern {pattern.shape} must be "
                f"({h}, {w}) / ({h}, {w}, {c})"
            )
        if not (np.isfinite(mask).all() and np.isfinite(pattern).all()):
            raise OutputError("trigger mask or pattern holds NaN or inf")
        if mask.min() < 0 or mask.max() > 1:
            raise OutputError("trigger mask values must lie in [0, 1]")
    return DetectOutput(float(score), labels, mask, pattern)


def label_predictions(path: Path, expected: int, num_classes: int) -> np.ndarray:
    """Validate repair predictions: one integer label per input, in 0..N (N = rejected)."""
    preds = _load_array(path, "predictions")
    if preds.shape != (expected,):
        raise OutputError(
            f"predict() returned shape {preds.shape}; expected ({expected},): one label per input"
        )
    if preds.dtype.kind == "f":
        if not np.isfinite(preds).all() or not np.all(preds == np.round(preds)):
            raise OutputError("predict() returned non-integer labels; return argmax labels")
    elif preds.dtype.kind not in "iu":
        raise OutputError(f"predict() returned dtype {preds.dtype}; return integer labels")
    preds = preds.astype(np.int64)
    if preds.size and preds.max() == num_classes + 1:
        raise OutputError(
            f"predict() answered {num_classes + 1} (N+1): the contract uses "
            f"N = {num_classes} for rejected inputs; subtract one"
        )
    if preds.size and (preds.min() < 0 or preds.max() > num_classes):
        raise OutputError(f"predict() labels outside 0..{num_classes} (N = rejected)")
    return preds


def input_scores(path: Path, expected: int) -> np.ndarray:
    """Validate filter scores: one finite P(triggered) per input."""
    scores = _load_array(path, "flag() scores").astype(np.float64)
    if scores.shape != (expected,):
        raise OutputError(f"flag() returned shape {scores.shape}; expected ({expected},)")
    if not np.isfinite(scores).all():
        raise OutputError("flag() returned NaN or inf")
    return scores


def generated_inputs(
    result: dict[str, Any],
    resolve: Any,
    input_shape: tuple[int, ...],
    input_range: tuple[float, float],
    budget: int,
    n_seeds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate generate()'s reply: at most ``budget`` finite inputs of the model's shape,
    inside its input range, each with the index of its seed in the clean split."""
    x = _load_array(resolve(result["x"]), "generated inputs")
    idx = _load_array(resolve(result["seed_index"]), "seed_index")
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise OutputError(
            f"generate() returned inputs of shape {x.shape}; expected (n, {', '.join(map(str, input_shape))})"
        )
    if len(x) > budget:
        raise OutputError(f"generate() returned {len(x)} inputs; the budget is {budget}")
    if idx.shape != (len(x),):
        raise OutputError(f"seed_index has shape {idx.shape}; expected ({len(x)},): one per input")
    if x.dtype.kind not in "fiu" or not np.isfinite(x).all():
        raise OutputError("generated inputs must be finite numbers")
    low, high = input_range
    tol = 1e-4 * max(1.0, abs(high - low))
    if x.size and (x.min() < low - tol or x.max() > high + tol):
        raise OutputError(f"generated inputs leave the input range [{low}, {high}]; clip them")
    if idx.dtype.kind == "f" and not np.all(idx == np.round(idx)):
        raise OutputError("seed_index must hold integer indices into clean.x")
    if idx.dtype.kind not in "fiu":
        raise OutputError(f"seed_index has dtype {idx.dtype}; use integers")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_seeds):
        raise OutputError(f"seed_index values must lie in 0..{n_seeds - 1} (indices into clean.x)")
    return np.clip(x.astype(np.float32), low, high), idx
