"""The submission contract: track protocols and result dataclasses.

This module is what a submission imports. It must import without TensorFlow (the harness
process reads these types while the model code only ever runs inside the sandbox).
See docs/SUBMITTING.md for the contract in prose.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "AdditiveTrigger",
    "CleanData",
    "Attacker",
    "Configurable",
    "Detection",
    "Detector",
    "Filter",
    "Fuzzer",
    "GeneratedInputs",
    "PoisonedSet",
    "Repairer",
    "Track",
    "TrainingModel",
    "Trigger",
    "WarpTrigger",
    "configured_dir",
    "read_clean_data",
    "training_models",
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
    ATTACK = "attack"  # a poisoned training set: the hand-in is the attacker (poison())

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
    """A trigger as a blend (BadNets' patch, a blended pattern, a reconstructed trigger):
    stamped input = (1 - mask) * x + mask * pattern."""

    mask: np.ndarray  # (H, W) in [0, 1]
    pattern: np.ndarray  # (H, W, C) in the input range
    kind: ClassVar[str] = "blend"

    def stamp(self, x: np.ndarray) -> np.ndarray:
        m = self.mask[None, :, :, None]
        return (1.0 - m) * x + m * self.pattern[None]


@dataclass
class AdditiveTrigger(Trigger):
    """An attack track trigger added to the image, not mixed in: stamped input =
    clip(x + mask * pattern, 0, 1), with a signed ``pattern`` (the sinusoid of Barni,
    Kallas and Tondi's SIG, a reflection as in Liu et al.'s Refool)."""

    kind: ClassVar[str] = "additive"

    def stamp(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x + self.mask[None, :, :, None] * self.pattern[None], 0.0, 1.0)


@dataclass
class WarpTrigger:
    """An attack track trigger that warps the whole image (Nguyen and Tran's WaNet): stamped
    pixel (i, j) = x sampled bilinearly at (i + flow[i, j, 0], j + flow[i, j, 1]), the
    sampling point clamped to the image."""

    flow: np.ndarray  # (H, W, 2): each pixel's move in pixels, (rows, columns)
    kind: ClassVar[str] = "warp"

    def stamp(self, x: np.ndarray) -> np.ndarray:
        _, h, w, _ = x.shape
        r = np.clip(np.arange(h)[:, None] + self.flow[..., 0], 0, h - 1)
        q = np.clip(np.arange(w)[None, :] + self.flow[..., 1], 0, w - 1)
        r0, q0 = np.floor(r).astype(np.int64), np.floor(q).astype(np.int64)
        r1, q1 = np.minimum(r0 + 1, h - 1), np.minimum(q0 + 1, w - 1)
        a, b = (r - r0)[None, ..., None], (q - q0)[None, ..., None]
        near = (1 - a) * ((1 - b) * x[:, r0, q0] + b * x[:, r0, q1])
        return (near + a * ((1 - b) * x[:, r1, q0] + b * x[:, r1, q1])).astype(np.float32)


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


@dataclass
class PoisonedSet:
    """Answer of ``poison()`` (the attack track): the training set after poisoning, and the
    trigger(s) that make a trained model misbehave.

    ``x`` and ``y`` have the length of the training set ``poison()`` was given, image for
    image: image i is training image i, changed or not, with its label, changed or not,
    which is why the order must hold. The harness trains a clean counterpart beside the
    backdoored model: on the images the hand-in relabelled, with their true labels; an
    image it changed and did not relabel (a clean-label attack's) goes back to the clean
    original there, and as many images drawn from every class get a trigger stamped by
    the harness instead, labels true, so the counterpart sees the triggers on every label.

    Each trigger is data, not code: a blend (``Trigger``), an added signal
    (``AdditiveTrigger``) or a warp (``WarpTrigger``). The harness stamps held-out test
    images with it (``stamp``) to measure the attack's success, so no hand-in code ever
    sees test data. ``targets[i]`` is the label trigger i forces on every other class
    (all-to-one).

    ``augment_rate`` / ``augment_share``: the noise of Xiong et al.'s Algorithm 2 ("Escaping
    Backdoor Attack Detection of Deep Learning", IFIP SEC 2020), applied by the harness:
    ``augment_share`` of the images the hand-in left unchanged get a trigger under a random
    sub-mask (each trigger pixel kept with probability ``augment_rate``), labels kept. A
    warp has no pixels to sub-mask: a hand-in with one makes its own noise (WaNet's noise
    mode) and leaves ``augment_share`` at 0.
    """

    x: np.ndarray  # (N, *input_shape) in the input range
    y: np.ndarray  # (N,) integer labels
    triggers: list[Trigger | WarpTrigger]
    targets: list[int]
    augment_rate: float = 0.0
    augment_share: float = 0.0

    def stamp(self, x: np.ndarray, which: int = 0) -> np.ndarray:
        """``x`` with trigger ``which`` applied (what the harness does to test images)."""
        return self.triggers[which].stamp(x)


@runtime_checkable
class Attacker(Protocol):
    """An attack-track hand-in: poisons the training set it is given (and only that: it
    never sees test data); ``rng`` is seeded per instance, so N instances differ."""

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet: ...


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


@runtime_checkable
class Configurable(Protocol):
    """A learned detector (``configure = true`` in submission.toml): ``configure`` runs
    once, in the sandbox, before any task, over the profile's labelled training split
    (``training_models(training_dir)``); what it writes to ``out_dir`` is mounted read-only
    for every task of the run (``configured_dir()``)."""

    def configure(self, training_dir: Path, out_dir: Path) -> None: ...


def configured_dir() -> Path | None:
    """The files this submission's configure step wrote (read-only), during its tasks;
    None for a submission without one."""
    value = os.environ.get("HARNESS_CONFIGURED_DIR")
    return Path(value) if value else None


def read_clean_data(bundle: Path) -> CleanData:
    """The CleanData of a public bundle folder (card.json and clean_val.npz)."""
    card = json.loads((bundle / "card.json").read_text())
    with np.load(bundle / "clean_val.npz") as npz:
        x, y = npz["x"], npz["y"]
        poisoned = npz["poisoned"] if "poisoned" in npz.files else None
    return CleanData(
        x=x,
        y=y,
        num_classes=int(card["num_classes"]),
        input_range=tuple(card["input_range"]),
        preprocessing=card["preprocessing"],
        poisoned=poisoned,
    )


@dataclass(frozen=True)
class TrainingModel:
    """One labelled model of the training split handed to ``configure``: its public
    bundle (what a task gets) and its truth (``truth.json``: ``poisoned``, ``attack``,
    ``targets``, ...; the trigger in ``triggers.npz`` beside it)."""

    folder: Path
    truth: dict[str, Any]

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def poisoned(self) -> bool:
        return bool(self.truth.get("poisoned"))

    def load(self) -> Any:
        """The Keras model (imports TensorFlow; safe mode, as the harness loads models)."""
        import keras

        return keras.saving.load_model(self.folder / "model.keras", compile=False, safe_mode=True)

    def clean(self) -> CleanData:
        return read_clean_data(self.folder)


def training_models(training_dir: Path) -> list[TrainingModel]:
    """The models of a released training split (``harness zoo release``), in its index's
    order."""
    index = json.loads((Path(training_dir) / "index.json").read_text())
    out = []
    for item in index["models"]:
        folder = Path(training_dir) / str(item["id"])
        out.append(TrainingModel(folder, json.loads((folder / "truth.json").read_text())))
    return out


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
