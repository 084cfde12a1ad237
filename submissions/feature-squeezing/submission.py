"""Feature Squeezing (Xu, Evans, Qi, NDSS 2018): an input filter.

Squeezing an input (fewer colour bits, median smoothing) merges inputs that differ only in
small details. A prediction that moves a lot when the input is squeezed rests on such
details: the paper flags adversarial examples this way; H. Yang's survey "Defending Against
Backdooring Attacks on Deep Neural Networks" proposes it for triggers.

1. Squeezers: bit-depth reduction to ``gray_bits`` (single-channel inputs) or
   ``colour_bits`` (colour inputs), and a ``median_size`` x ``median_size`` median filter
   per channel (scipy's ``median_filter`` as the paper uses it: reflected borders, the upper
   median of an even window).
2. Score = max over squeezers of the L1 distance between the softmax of the input and of
   its squeezed version (the paper's joint detector), in [0, 2].
3. The threshold is the ``1 - frr`` quantile of the clean split's scores;
   ``flag(x)`` = d / (d + threshold): 0 at d = 0, 0.5 at the threshold, increasing in d.

Repair track: the model's label, or N (rejected) where the input is flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.api import CleanData, InputMemo, fingerprint


class FeatureSqueezing:
    # State the track methods build. The constructor only stores its parameters (checked by
    # `harness submission check`), so these class attributes give the defaults.
    model: Any = None
    bits = 0
    input_range: tuple[float, ...] = (0.0, 1.0)
    num_classes = 0
    threshold = 0.0
    clean_distance: np.ndarray | None = None
    #: fingerprint(model, clean) of the calibration in place, and the (distance, labels)
    #: of the batches scored since: the repair track's predict() reuses the filter track's
    #: flag() work on the same model and inputs (one instance serves a model's tracks).
    _fitted: str = ""
    _memo: InputMemo | None = None

    def __init__(
        self,
        gray_bits: int = 1,
        colour_bits: int = 5,
        median_size: int = 2,
        frr: float = 0.05,
        batch_size: int = 512,
    ) -> None:
        self.gray_bits = gray_bits
        self.colour_bits = colour_bits
        self.median_size = median_size
        self.frr = frr
        self.batch_size = batch_size
        self._validate()

    def _validate(self) -> None:
        for name in ("gray_bits", "colour_bits"):
            bits = getattr(self, name)
            if not isinstance(bits, int) or not 0 <= bits <= 8:
                raise ValueError(f"{name} must be an integer in 0..8 (0 = off), not {bits!r}")
        size = self.median_size
        if not isinstance(size, int) or size == 1 or not 0 <= size <= 5:
            raise ValueError(f"median_size must be 0 (off) or 2..5, not {size!r}")
        if not size and not (self.gray_bits and self.colour_bits):
            raise ValueError("every squeezer is off: set median_size or the bit depths")
        if not 0.0 < self.frr < 0.5:
            raise ValueError(f"frr must lie in (0, 0.5), not {self.frr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {self.batch_size!r}")

    # -- filter track ---------------------------------------------------------------------
    def fit_filter(self, model, clean: CleanData) -> None:
        key = fingerprint(model, clean)
        if self._fitted == key:
            return  # calibrated on this model and clean split already (filter, then repair)
        self.model, self.num_classes = model, clean.num_classes
        self.input_range = tuple(float(v) for v in clean.input_range)
        self.bits = self.gray_bits if clean.x.shape[-1] == 1 else self.colour_bits
        self.clean_distance, _ = self._distance(clean.x)
        self.threshold = max(float(np.quantile(self.clean_distance, 1.0 - self.frr)), 1e-9)
        self._fitted, self._memo = key, InputMemo()

    def flag(self, x: np.ndarray) -> np.ndarray:
        distance, _ = self._batch_distance(x)
        return self._score(distance)

    def _batch_distance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_distance(x)``, computed once per batch of inputs on this model."""
        assert self._memo is not None, "fit_filter() comes first"
        return self._memo(np.asarray(x, dtype=np.float32), self._distance)

    def _score(self, distance: np.ndarray) -> np.ndarray:
        """P(triggered): 0.5 at the threshold, monotone increasing in the distance."""
        return distance / (distance + self.threshold)

    # -- repair track ---------------------------------------------------------------------
    def repair(self, model, clean: CleanData) -> None:
        self.fit_filter(model, clean)

    def predict(self, x: np.ndarray) -> np.ndarray:
        distance, labels = self._batch_distance(x)
        return np.where(self._score(distance) > 0.5, self.num_classes, labels)

    # -- steps ----------------------------------------------------------------------------
    def _squeezers(self) -> list:
        low, high = self.input_range
        out = []
        if self.bits:
            out.append(lambda x: reduce_bit_depth(x, self.bits, low, high))
        if self.median_size:
            out.append(lambda x: median_filter(x, self.median_size))
        return out

    def _distance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Max L1 distance of the softmax under each squeezer, and the model's labels, a
        chunk of ``batch_size`` inputs at a time: the median filter's windows hold
        ``median_size ** 2`` copies of what they filter, and a 1283-class net's softmax
        is 10 KB per input, so the whole clean split at once would not fit in memory."""
        x = np.asarray(x, dtype=np.float32)
        distance, labels = np.zeros(len(x)), np.zeros(len(x), dtype=np.int64)
        for i in range(0, len(x), self.batch_size):
            chunk = x[i : i + self.batch_size]
            probs = self._probs(chunk)
            for squeeze in self._squeezers():
                moved = np.abs(self._probs(squeeze(chunk)) - probs).sum(axis=1)
                distance[i : i + len(chunk)] = np.maximum(distance[i : i + len(chunk)], moved)
            labels[i : i + len(chunk)] = np.argmax(probs, axis=1)
        return distance, labels

    def _probs(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros((0, self.num_classes))
        return np.asarray(self.model.predict_on_batch(x), dtype=np.float64)


def reduce_bit_depth(x: np.ndarray, bits: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Round ``x`` to ``2**bits`` evenly spaced levels of ``[low, high]`` (paper Sec. IV)."""
    levels = 2**bits - 1
    unit = np.clip((x - low) / (high - low), 0.0, 1.0)
    return (np.round(unit * levels) / levels * (high - low) + low).astype(np.float32)


def median_filter(x: np.ndarray, size: int) -> np.ndarray:
    """Per-channel ``size`` x ``size`` median of NHWC images, as
    ``scipy.ndimage.median_filter(x, size=(1, size, size, 1))``: reflected borders, window
    offsets ``-(size // 2) .. size - 1 - size // 2``, the upper median of an even window."""
    before, after = size // 2, size - 1 - size // 2
    padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
    flat = windows.reshape((*x.shape, size * size))
    k = size * size // 2
    return np.partition(flat, k, axis=-1)[..., k].astype(np.float32)
