"""The typed rows of the results store: a task, its model's facts, an attack instance.

A task is (run, submission, model, track, seed). ``seed`` is the task's replicate: 0 for
every run, 1 .. K-1 for the extra seeds of ``harness run --seeds K`` (each replicate draws
its own task seed, so a defense's randomness is measured, not hidden). Each row carries the
facts about its model that the views need (``ModelFacts``) and the track's outcome (its
per-model scores) as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.results.schema import SCHEMA_VERSION


@dataclass(frozen=True)
class ModelFacts:
    """What the harness knew about a task's model when it ran (its truth and card)."""

    poisoned: bool | None = None  # None: truth unknown (an imported model)
    role: str | None = None  # backdoored, counterpart, clean; None when unknown
    dataset: str | None = None
    attack: str | None = None
    targets: tuple[int, ...] = ()


@dataclass(frozen=True)
class TaskRecord:
    run_id: str
    submission: str
    submission_hash: str
    oracle: bool
    model_id: str
    model_hash: str
    track: str
    status: str
    outputs: dict[str, Any]
    scores: dict[str, Any]
    error: str | None
    stderr_tail: str | None
    seconds: float | None
    isolation: str
    facts: ModelFacts = field(default_factory=ModelFacts)
    schema_version: int = SCHEMA_VERSION
    budget: float | None = None  # the task's wall-clock limit in seconds, when recorded
    seed: int = 0  # the replicate (``harness run --seeds K``: 0 .. K-1)


def _facts_of_version_1(scores: dict[str, Any]) -> tuple[ModelFacts, dict[str, Any]]:
    """A version-1 row kept ``poisoned`` and ``dataset`` among its scores: move them out.
    Its role, attack and targets were not stored."""
    scores = dict(scores)
    poisoned, dataset = scores.pop("poisoned", None), scores.pop("dataset", None)
    return ModelFacts(poisoned=poisoned, dataset=dataset), scores


@dataclass(frozen=True)
class AttackInstance:
    """One instance of an attack hand-in (the attack track): its poisoned model and clean
    counterpart, or why there are none. ``status`` "invalid": the poisoned set broke the
    contract or its limits; "failed": the hand-in crashed or ran out of time."""

    run_id: str
    attack: str
    attack_hash: str
    instance: int
    status: str
    error: str | None = None
    stderr_tail: str | None = None
    model_id: str | None = None
    counterpart_id: str | None = None
    ca: float | None = None
    counterpart_ca: float | None = None
    asr: float | None = None
    labels_changed: float | None = None
    images_changed: float | None = None
    seconds: float | None = None


class UnstorableTask(ValueError):
    """A task whose outputs or scores JSON cannot write (nested too deeply for the encoder,
    or not JSON at all): the submission's doing, so the runner stores the task as failed."""


def task_json(value: dict[str, Any], what: str) -> str:
    """``value`` as the JSON the store keeps, or ``UnstorableTask`` saying why not."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UnstorableTask(f"its {what} cannot be stored as JSON ({reason})") from None


def task_record(r: tuple[Any, ...]) -> TaskRecord:
    scores, version = json.loads(r[9]), int(r[19])
    if version == 1:
        facts, scores = _facts_of_version_1(scores)
    else:
        poisoned = None if r[14] is None else bool(r[14])
        facts = ModelFacts(poisoned, r[15], r[16], r[17], tuple(json.loads(r[18])))
    return TaskRecord(
        r[0],
        r[1],
        r[2],
        bool(r[3]),
        r[4],
        r[5],
        r[6],
        r[7],
        json.loads(r[8]),
        scores,
        r[10],
        r[11],
        r[12],
        r[13],
        facts,
        version,
        r[20],
        int(r[21]),
    )
