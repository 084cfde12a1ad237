"""The typed rows of the results store: a task, its model's facts, an attack instance.

A task is (run, submission, model, track, replicate): 0 for
every run, 1 .. K-1 for the extra seeds of ``harness run --seeds K`` (each replicate draws
its own task seed, so a defense's randomness is measured, not hidden). Each row carries the
facts about its model that the views need (``ModelFacts``) and the track's outcome (its
per-model scores) as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import FailureKind, HarnessError
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
    replicate: int = 0  # ``harness run --seeds K`` runs replicates 0 .. K-1
    failure: FailureKind | None = None  # why it failed (None when it did not)

    def __post_init__(self) -> None:
        # A failed task always has a kind (a crash unless its runner knew better); one
        # that ran has none.
        kind = (self.failure or FailureKind.CRASH) if self.status != "ok" else None
        object.__setattr__(self, "failure", kind)


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
    #: the clean counterpart's ASR on the same stamped test images: what the trigger does
    #: to a model without the backdoor (None in rows stored before it was measured)
    counterpart_asr: float | None = None


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


def task_row(rec: TaskRecord) -> dict[str, Any]:
    """The columns a task is stored in, by name (the store adds its version and time);
    ``UnstorableTask`` when its outputs or scores are not JSON the store can write."""
    return {
        "run_id": rec.run_id,
        "submission": rec.submission,
        "submission_hash": rec.submission_hash,
        "oracle": int(rec.oracle),
        "model_id": rec.model_id,
        "model_hash": rec.model_hash,
        "track": rec.track,
        "status": rec.status,
        "outputs": task_json(rec.outputs, "outputs"),
        "scores": task_json(rec.scores, "scores"),
        "error": rec.error,
        "stderr_tail": rec.stderr_tail,
        "seconds": rec.seconds,
        "isolation": rec.isolation,
        "poisoned": None if rec.facts.poisoned is None else int(rec.facts.poisoned),
        "role": rec.facts.role,
        "dataset": rec.facts.dataset,
        "attack": rec.facts.attack,
        "targets": json.dumps(list(rec.facts.targets)),
        "schema_version": SCHEMA_VERSION,
        "budget": rec.budget,
        "seed": rec.replicate,  # the column keeps its first name
        "failure": None if rec.failure is None else rec.failure.value,
    }


def task_record(row: Mapping[str, Any]) -> TaskRecord:
    """A stored row (by column name) as the record it was, in the current form."""
    scores, version = json.loads(row["scores"]), int(row["schema_version"])
    if version > SCHEMA_VERSION:
        raise HarnessError(
            f"a task was stored in schema version {version}; this harness reads up to "
            f"{SCHEMA_VERSION}",
            fix=f"read the store with harness {row['harness_version']} or newer",
        )
    if version == 1:
        facts, scores = _facts_of_version_1(scores)
    else:
        poisoned = None if row["poisoned"] is None else bool(row["poisoned"])
        targets = tuple(json.loads(row["targets"]))
        facts = ModelFacts(poisoned, row["role"], row["dataset"], row["attack"], targets)
    return TaskRecord(
        run_id=row["run_id"],
        submission=row["submission"],
        submission_hash=row["submission_hash"],
        oracle=bool(row["oracle"]),
        model_id=row["model_id"],
        model_hash=row["model_hash"],
        track=row["track"],
        status=row["status"],
        outputs=json.loads(row["outputs"]),
        scores=scores,
        error=row["error"],
        stderr_tail=row["stderr_tail"],
        seconds=row["seconds"],
        isolation=row["isolation"],
        facts=facts,
        schema_version=version,
        budget=row["budget"],
        replicate=int(row["seed"]),
        failure=None if row["failure"] is None else FailureKind(row["failure"]),
    )
