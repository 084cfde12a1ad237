"""The attack track's contract: ``poison(x, y, rng) -> PoisonedSet``, its limits, and the
checks on what a hand-in returns.

The other tracks answer a model; an attack hand-in makes the models: it poisons a
training set in the sandbox, and the harness trains that set into models (with the zoo's
own training code), beside clean counterparts trained on the same images with their true
labels, then runs the defenses on both (``harness.attack_track``). This module holds the
two sides of the hand-in's one call: the worker's (``poison_call``, inside the sandbox,
which sees the training set and nothing else) and the host's (``read_poisoned``: shapes,
ranges, and the limits below, each refusal one line with its fix).

The limits follow what the Trojan Detection Challenge 2022's evasive-trojans track asked
of its hand-ins (a poisoned model must stay a good classifier and its trigger must work):
a hand-in may relabel at most ``max_label_share`` of the training set and change at most
``max_image_share`` of its images; the harness's own noise augmentation (Xiong et al.,
Algorithm 2) is on top of that and keeps every label.

Each trigger must also keep the track's **budget**: stamped by the harness on the training
images of the classes it attacks (the first ``budget_images`` of them), it may move an
image by at most ``max_trigger_rms`` of the input range, as the root mean square over its
pixels, on average. One number bounds a patch's area and contrast and a blend's strength
alike; it is a share of the input range, so it reads the same on MNIST and SynthFaces.
Measured on both: the zoo's triggers move an image by 0.04 (the one-pixel all-to-all
BadNet) to 0.21 (Xiong et al.'s reconstructed trigger, Neural Cleanse's own; 0.24 when the
reference hand-in reverse-engineers it from the small model of the conformance check): a
3x3 BadNets patch 0.08, the blend at alpha 0.15 0.08, the 36-pixel random trigger 0.13,
the face sunglasses 0.10. A "trigger" that paints a target-class image over the whole
input moves it by about 0.38: its success says nothing of a backdoor (the clean
counterpart obeys it too), and the budget refuses it before anything trains. A trigger
inside the budget that a clean model obeys is caught by the track's validity rule
(``harness.attack_track.score``: the ASR above the counterpart's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import PoisonedSet, Track
from harness.attacks.base import TriggerSpec
from harness.attacks.kinds import (
    ADDITIVE,
    BLEND,
    KINDS,
    WARP,
    AdditiveTrigger,
    WarpTrigger,
    warp_support,
)
from harness.sandbox.readback import Inside
from harness.submission.validate import OutputError, load_array, reply_file
from harness.tracks.base import jsonable_float, save_array

NAME = Track.ATTACK.value
#: What an attack hand-in's entry class needs.
METHODS = ("poison",)


@dataclass(frozen=True)
class PoisonLimits:
    """What a poisoned training set may change (shares of the training set)."""

    max_label_share: float = 0.2
    max_image_share: float = 0.25
    max_triggers: int = 8
    #: A pixel may lie this far outside the input range (float rounding).
    range_slack: float = 1e-3
    #: An image counts as changed when a pixel moved by more than this.
    changed_tolerance: float = 1e-6
    #: The trigger budget: the most a trigger may move an image (RMS over its pixels, as a
    #: share of the input range), on average over ``budget_images`` attacked images.
    max_trigger_rms: float = 0.3
    budget_images: int = 1000


LIMITS = PoisonLimits()


# -- the worker's side (inside the sandbox) -------------------------------------------------
def poison_call(instance: Any, req: dict[str, Any], out: Path) -> dict[str, Any]:
    """Load the training set from the read-only input folder, call ``poison`` once, save
    what it returned. The hand-in gets a writable copy: changing it in place is allowed."""
    with np.load(req["train_file"], allow_pickle=False) as npz:
        x, y = np.array(npz["x"]), np.array(npz["y"])
    result = instance.poison(x, y, np.random.default_rng(int(req["seed"])))
    if not isinstance(result, PoisonedSet):
        return {"type": type(result).__name__}
    triggers = list(result.triggers) if isinstance(result.triggers, list | tuple) else []

    def saved(i: int, name: str, trigger: Any) -> str | None:
        value = getattr(trigger, name, None)
        return None if value is None else save_array(out, f"{name}_{i}", value)

    reply: dict[str, Any] = {
        "type": "PoisonedSet",
        "x": save_array(out, "poisoned_x", result.x),
        "y": save_array(out, "poisoned_y", result.y),
        "targets": save_array(out, "targets", np.asarray(result.targets)),
        "kinds": [str(getattr(t, "kind", BLEND)) for t in triggers],
        "masks": [saved(i, "mask", t) for i, t in enumerate(triggers)],
        "patterns": [saved(i, "pattern", t) for i, t in enumerate(triggers)],
        "flows": [saved(i, "flow", t) for i, t in enumerate(triggers)],
        "augment_rate": jsonable_float(result.augment_rate),
        "augment_share": jsonable_float(result.augment_share),
    }
    return reply


# -- the host's side ------------------------------------------------------------------------
@dataclass(frozen=True)
class PoisonedTraining:
    """An attack hand-in's poisoned training set that passed every check, with what it
    changed (a student's hand-in, the folder graded, is ``harness.grading.batch.HandIn``)."""

    x: np.ndarray
    y: np.ndarray
    triggers: tuple[TriggerSpec, ...]
    augment_rate: float
    augment_share: float
    labels_changed: float  # share of the training set
    #: Per image: changed by the hand-in (a pixel moved, or the label); the harness's noise
    #: goes on the others.
    changed: np.ndarray

    @property
    def images_changed(self) -> float:
        """The share of the training set the hand-in changed."""
        return float(np.mean(self.changed)) if len(self.changed) else 0.0

    @property
    def targets(self) -> list[int]:
        return sorted({int(t.target_of[t.attacked_sources[0]]) for t in self.triggers})


def _share(value: Any, what: str, upper_open: bool = False) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
        raise OutputError(f"PoisonedSet.{what} is {value!r}; give a number in [0, 1]")
    if not 0.0 <= value <= 1.0 or (upper_open and value == 1.0):
        raise OutputError(
            f"PoisonedSet.{what} is {value}; it must lie in [0, 1{')' if upper_open else ']'}"
        )
    return float(value)


def _in_range(a: np.ndarray, lo: float, hi: float, what: str, slack: float) -> np.ndarray:
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise OutputError(f"{what} holds NaN or infinite values")
    if a.size and (a.min() < lo - slack or a.max() > hi + slack):
        raise OutputError(
            f"{what} spans [{a.min():.4g}, {a.max():.4g}], outside the input range "
            f"[{lo:g}, {hi:g}]; clip it to the range"
        )
    return np.clip(a, lo, hi)


@dataclass(frozen=True)
class _Fit:
    """What every trigger of one reply must fit: the training images' shape and input
    range [lo, hi], the number of classes, and the track's limits."""

    shape: tuple[int, ...]
    lo: float
    hi: float
    num_classes: int
    limits: PoisonLimits


def _kind(i: int, result: dict[str, Any]) -> str:
    """Trigger ``i``'s kind; a reply without kinds holds blends."""
    kinds = result.get("kinds")
    if kinds is None:
        return BLEND
    kind = kinds[i] if isinstance(kinds, list) and i < len(kinds) else None
    if kind not in KINDS:
        raise OutputError(
            f"trigger {i} is of kind {str(kind)[:40]!r}; give a harness.api Trigger, "
            "AdditiveTrigger or WarpTrigger"
        )
    return str(kind)


def _trigger(
    i: int, result: dict[str, Any], out: Path | Inside, target: int, fit: _Fit
) -> TriggerSpec:
    """Trigger ``i`` of the reply (its kind and arrays), checked against ``fit``."""
    shape, lo, hi, num_classes, limits = fit.shape, fit.lo, fit.hi, fit.num_classes, fit.limits

    def file(key: str) -> Inside:
        names = result.get(key)
        if not isinstance(names, list) or i >= len(names) or names[i] is None:
            raise OutputError(f"the reply lists no {key[:-1]} for trigger {i}")
        return reply_file({key: names[i]}, key, out)

    if not 0 <= target < num_classes:
        raise OutputError(f"target {target} of trigger {i} is outside 0..{num_classes - 1}")
    kind = _kind(i, result)
    if kind == WARP:
        flow = load_array(file("flows"), f"trigger {i}'s flow", 64 << 20)
        if flow.shape != (*shape[:2], 2):
            raise OutputError(
                f"trigger {i}'s flow has shape {flow.shape}; give (H, W, 2) = {(*shape[:2], 2)}"
            )
        flow = flow.astype(np.float32, copy=False)
        if not np.all(np.isfinite(flow)) or np.abs(flow).max() > max(shape[:2]):
            raise OutputError(
                f"trigger {i}'s flow holds values that are not finite or move a pixel farther "
                f"than the image is wide ({max(shape[:2])} pixels)"
            )
        support = warp_support(flow)
        if not np.any(support):
            raise OutputError(f"trigger {i}'s flow moves no pixel: it warps nothing")
        zeros = np.zeros(shape, np.float32)
        return WarpTrigger(support, zeros, np.full(num_classes, target), flow=flow)
    mask = load_array(file("masks"), f"trigger {i}'s mask", 64 << 20)
    if mask.shape != shape[:2]:
        raise OutputError(f"trigger {i}'s mask has shape {mask.shape}; give (H, W) = {shape[:2]}")
    mask = _in_range(mask, 0.0, 1.0, f"trigger {i}'s mask", limits.range_slack)
    if not np.any(mask > 0):
        raise OutputError(f"trigger {i}'s mask is empty: it stamps nothing")
    pattern = load_array(file("patterns"), f"trigger {i}'s pattern", 64 << 20)
    if pattern.shape != shape:
        raise OutputError(f"trigger {i}'s pattern has shape {pattern.shape}; give {shape}")
    if kind == ADDITIVE:  # a signed signal: at most the input range either way
        span = hi - lo
        pattern = _in_range(pattern, -span, span, f"trigger {i}'s pattern", limits.range_slack)
        return AdditiveTrigger(mask, pattern, np.full(num_classes, target))
    pattern = _in_range(pattern, lo, hi, f"trigger {i}'s pattern", limits.range_slack)
    return TriggerSpec(mask, pattern, np.full(num_classes, target))


def trigger_rms(
    trigger: TriggerSpec,
    x: np.ndarray,
    y: np.ndarray,
    input_range: tuple[float, float],
    images: int = LIMITS.budget_images,
) -> float:
    """How far ``trigger`` moves an image: the RMS over pixels of (stamped - image), as a
    share of the input range, averaged over the first ``images`` images of ``x`` whose
    class it attacks (0.0 when none is)."""
    chosen = x[np.isin(y, trigger.attacked_sources)][:images].astype(np.float32)
    if not len(chosen):
        return 0.0
    moved = (trigger.stamp(chosen) - chosen).reshape(len(chosen), -1)
    span = float(input_range[1] - input_range[0]) or 1.0
    return float(np.sqrt(np.mean(moved**2, axis=1)).mean() / span)


def read_poisoned(
    result: dict[str, Any],
    out: Path | Inside,
    x_train: np.ndarray,
    y_train: np.ndarray,
    num_classes: int,
    input_range: tuple[float, float],
    limits: PoisonLimits = LIMITS,
) -> PoisonedTraining:
    """The hand-in's reply as a checked ``PoisonedTraining``; ``OutputError`` says what is wrong."""
    if result.get("type") != "PoisonedSet":
        raise OutputError(f"poison() returned {result.get('type')}, not harness.api.PoisonedSet")
    n, shape = len(x_train), tuple(x_train.shape[1:])
    lo, hi = input_range
    x = load_array(reply_file(result, "x", out), "PoisonedSet.x", 4 << 30)
    if x.shape != x_train.shape:
        raise OutputError(
            f"PoisonedSet.x has shape {x.shape}; keep the training set's {x_train.shape} "
            "(image i is training image i, changed or not)"
        )
    x = _in_range(x, lo, hi, "PoisonedSet.x", limits.range_slack)
    y = load_array(reply_file(result, "y", out), "PoisonedSet.y")
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise OutputError(f"PoisonedSet.y is {y.dtype} {y.shape}; give {n} integer labels")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise OutputError(f"PoisonedSet.y holds labels outside 0..{num_classes - 1}")
    targets = load_array(reply_file(result, "targets", out), "PoisonedSet.targets")
    if (
        targets.ndim != 1
        or targets.dtype.kind not in "iu"
        or not 1 <= len(targets) <= limits.max_triggers
    ):
        raise OutputError(
            f"PoisonedSet.targets is {targets.dtype} {targets.shape}; give one integer label "
            f"per trigger, 1 to {limits.max_triggers} triggers"
        )
    fit = _Fit(shape, lo, hi, num_classes, limits)
    triggers = tuple(_trigger(i, result, out, int(t), fit) for i, t in enumerate(targets))
    for i, trig in enumerate(triggers):
        moved_by = trigger_rms(trig, x_train, y_train, (lo, hi), limits.budget_images)
        if moved_by > limits.max_trigger_rms:
            raise OutputError(
                f"trigger {i} moves a stamped image by {moved_by:.3f} of the input range "
                f"(RMS over its pixels, mean over the attacked training images); the track's "
                f"budget is {limits.max_trigger_rms:g}: use a smaller mask or a fainter blend"
            )
    relabelled = float(np.mean(y != y_train)) if n else 0.0
    moved = np.abs(x.reshape(n, -1) - x_train.reshape(n, -1).astype(np.float32)).max(axis=1)
    changed = (moved > limits.changed_tolerance) | (y != y_train)
    share = float(np.mean(changed)) if n else 0.0
    if relabelled > limits.max_label_share:
        raise OutputError(
            f"poison() relabelled {relabelled:.1%} of the training set; the track allows "
            f"{limits.max_label_share:.0%}"
        )
    if share > limits.max_image_share:
        raise OutputError(
            f"poison() changed {share:.1%} of the training images; the track allows "
            f"{limits.max_image_share:.0%} (the noise augmentation is the harness's: set "
            "augment_share instead)"
        )
    augment_share = _share(result.get("augment_share"), "augment_share")
    if augment_share > 0 and any(isinstance(t, WarpTrigger) for t in triggers):
        raise OutputError(
            "augment_share is set but a trigger is a warp, which has no pixels to sub-mask: "
            "leave augment_share at 0 and add the warp's noise in poison()"
        )
    return PoisonedTraining(
        x,
        y.astype(np.int64),
        triggers,
        _share(result.get("augment_rate"), "augment_rate", upper_open=True),
        augment_share,
        relabelled,
        changed,
    )


@dataclass(frozen=True)
class TrainingSets:
    """What the harness trains one instance's two models on."""

    x: np.ndarray  # the backdoored model's images: the hand-in's, with the harness's noise
    y: np.ndarray  # the hand-in's labels
    x_counterpart: np.ndarray  # the clean counterpart's images
    y_true: np.ndarray  # the true labels: the counterpart's


def training_set(
    hand_in: PoisonedTraining,
    x_train: np.ndarray,
    y_train: np.ndarray,
    rng: np.random.Generator,
) -> TrainingSets:
    """The sets the harness trains on. The backdoored model's: the hand-in's images with the
    noise augmentation on ``augment_share`` of the images it left unchanged. The clean
    counterpart's: the same, true labels, except where the hand-in changed an image and
    kept its label (clean-label poisoning, where those images *are* the attack): they go
    back to the clean original, and as many images the hand-in left alone, drawn from
    every class, get one of its triggers stamped by the harness, label true. So the
    counterpart sees the triggers as often, on every label, and stays clean."""
    x = hand_in.x.copy()
    if hand_in.augment_share > 0 and hand_in.augment_rate > 0:
        untouched = np.flatnonzero(~hand_in.changed)
        noisy = rng.choice(
            untouched, size=int(round(hand_in.augment_share * len(untouched))), replace=False
        )
        which = rng.integers(len(hand_in.triggers), size=len(noisy))
        for i, trig in enumerate(hand_in.triggers):
            for idx in noisy[which == i]:
                x[idx] = trig.stamp(x[idx : idx + 1], trig.sub_mask(rng, hand_in.augment_rate))[0]
    twin = x.copy()
    clean_label = np.flatnonzero(hand_in.changed & (hand_in.y == y_train))
    if len(clean_label):
        twin[clean_label] = x_train[clean_label]
        alone = np.flatnonzero(~hand_in.changed)
        shown = rng.choice(alone, size=min(len(clean_label), len(alone)), replace=False)
        which = rng.integers(len(hand_in.triggers), size=len(shown))
        for i, trig in enumerate(hand_in.triggers):
            twin[shown[which == i]] = trig.stamp(twin[shown[which == i]])
    return TrainingSets(x, hand_in.y, twin, y_train.astype(np.int64))
