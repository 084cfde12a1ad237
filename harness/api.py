"""The submission contract: track protocols and result dataclasses.

This module is what a submission imports. It must import without TensorFlow (the harness
process reads these types while the model code only ever runs inside the sandbox).
See docs/SUBMITTING.md for the contract in prose.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "CleanData",
    "Detection",
    "Detector",
    "Filter",
    "Fuzzer",
    "GeneratedInputs",
    "Repairer",
    "Track",
    "Trigger",
]


class Track(str, enum.Enum):
    """What a submission is asked to do with one model."""

    # What each track needs of the entry class, and how it is scored: harness/tracks/.
    DETECT = "detect"  # P(backdoored) for the model
    TARGET = "target"  # predicted target label(s), reported by detect()
    TRIGGER = "trigger"  # reconstructed trigger, reported by detect()
    FILTER = "filter"  # per-input P(triggered)
    REPAIR = "repair"  # repaired classifier; label N means "rejected as backdoored"
    FUZZ = "fuzz"  # generated inputs that should activate a backdoor

    @classmethod
    def parse(cls, value: str) -> Track:
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown track {value!r}; choose from {names}") from None


#: How many inputs ``generate()`` may return per model unless a run sets another budget.
DEFAULT_FUZZ_BUDGET = 500


@dataclass(frozen=True)
class CleanData:
    """The small clean validation split a submission may use (read-only arrays).

    ``x`` is already in the model's input space (preprocessing applied), ``y`` holds
    integer labels in ``0..num_classes-1``. ``poisoned`` is set only for oracle
    submissions (research ablations): a few inputs stamped with the model's own trigger.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    input_range: tuple[float, float] = (0.0, 1.0)
    preprocessing: str = "none"
    poisoned: np.ndarray | None = None

    def __post_init__(self) -> None:
        for arr in (self.x, self.y, self.poisoned):
            if arr is not None and arr.flags.writeable:
                arr.flags.writeable = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


@dataclass
class Trigger:
    """A reconstructed trigger: stamped input = (1 - mask) * x + mask * pattern."""

    mask: np.ndarray  # (H, W) in [0, 1]
    pattern: np.ndarray  # (H, W, C) in the input range

    def stamp(self, x: np.ndarray) -> np.ndarray:
        m = self.mask[None, :, :, None]
        return (1.0 - m) * x + m * self.pattern[None]


@dataclass
class Detection:
    """Answer of ``detect()``: P(backdoored), and optionally targets and a trigger."""

    score: float
    target_labels: list[int] | None = None
    trigger: Trigger | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, stored, never scored


@dataclass
class GeneratedInputs:
    """Answer of ``generate()``: inputs and, for each, the index of its seed in ``clean.x``."""

    x: np.ndarray
    seed_index: np.ndarray


@runtime_checkable
class Detector(Protocol):
    def detect(self, model: Any, clean: CleanData) -> Detection: ...


@runtime_checkable
class Filter(Protocol):
    def fit_filter(self, model: Any, clean: CleanData) -> None: ...

    def flag(self, x: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Repairer(Protocol):
    def repair(self, model: Any, clean: CleanData) -> None: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Fuzzer(Protocol):
    def generate(self, model: Any, clean: CleanData, budget: int) -> GeneratedInputs: ...


def fingerprint(model: Any, clean: CleanData) -> str:
    """A digest of a model's weights and a clean split's inputs.

    The harness runs a submission's tracks on one model on one instance (a fresh instance
    per model), so a defense may keep what ``detect`` computed and reuse it in ``repair``;
    keying that memo on this digest makes sure it is only reused for the same model and
    data (Neural Cleanse reuses its reversed triggers, Fine-Pruning its repaired net)."""
    import hashlib

    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    digest.update(np.ascontiguousarray(clean.x).tobytes())
    return digest.hexdigest()


class InputMemo:
    """Per-input answers kept by a digest of the input batch.

    The harness sends the filter and the repair track of one model the same evaluation
    inputs in the same batches, on the same instance, so a defense whose ``flag`` and
    ``predict`` rest on one costly per-input statistic (STRIP's entropy, Feature
    Squeezing's distance) can compute each batch once: ``memo(x, compute)``. At most
    ``limit`` batches are kept; later ones are computed and not kept.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._answers: dict[str, Any] = {}

    def __call__(self, x: np.ndarray, compute: Any) -> Any:
        import hashlib

        x = np.ascontiguousarray(x)
        key = hashlib.sha256(f"{x.dtype}{x.shape}".encode() + x.tobytes()).hexdigest()
        if key not in self._answers:
            value = compute(x)
            if len(self._answers) >= self.limit:
                return value
            self._answers[key] = value
        return self._answers[key]
