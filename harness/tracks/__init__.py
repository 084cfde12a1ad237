"""The registry of tracks: every place that handles a track iterates over ``KINDS``.

Adding a track: write one module beside these (a ``TrackKind`` subclass, see ``base.py``),
and register its instance in ``KINDS`` below. The runner plans and scores tasks through
it, the sandbox worker finds its call here, aggregation and the leaderboard take its
scores and table from it, and ``harness submission check`` its conformance checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.api import Track
from harness.registry import Registry
from harness.results import TaskRecord
from harness.scoring.aggregate import Score, by_seed, over_seeds
from harness.tracks import attack
from harness.tracks.base import Outcome, RunOptions, TaskInputs, TrackKind, WorkerCall
from harness.tracks.detect import DETECT
from harness.tracks.filter import FILTER
from harness.tracks.fuzz import FUZZ
from harness.tracks.repair import EXPORT, REPAIR, export_call

__all__ = [
    "KINDS",
    "PRODUCERS",
    "RunOptions",
    "TaskInputs",
    "TrackKind",
    "aggregate",
    "aggregate_kind",
    "all_methods",
    "by_name",
    "kind_of",
    "outcome_field",
    "outcome_of",
    "required_methods",
    "tasks_for",
    "worker_calls",
]

#: Every scored task kind, in the order a submission's tasks run and tables are shown.
KINDS: tuple[TrackKind, ...] = (DETECT, FILTER, REPAIR, FUZZ)

#: Tracks whose hand-ins make models instead of answering them (``harness.attack_track``
#: runs them): no per-model task, their own contract module.
PRODUCERS: dict[Track, tuple[str, ...]] = {Track.ATTACK: attack.METHODS}

_BY_TRACK: dict[Track, TrackKind] = {t: k for k in KINDS for t in k.answers}
_BY_NAME: Registry[TrackKind] = Registry("track kind", [(k.name, k) for k in KINDS])
if set(_BY_TRACK) | set(PRODUCERS) != set(Track):
    raise ImportError(f"tracks without a TrackKind: {set(Track) - set(_BY_TRACK) - set(PRODUCERS)}")


def kind_of(track: Track) -> TrackKind:
    """The task kind that answers ``track`` (detect answers target and trigger too)."""
    return _BY_TRACK[track]


def by_name(name: str) -> TrackKind:
    """The task kind stored under ``name``; ``UnknownName`` (a KeyError) for a name no
    kind has."""
    return _BY_NAME[name]


def outcome_of(record: TaskRecord) -> Outcome:
    """The typed outcome of a task of any track (``UnknownName`` for a track no kind has):
    for the views that read a field by its metric's name."""
    return by_name(record.track).outcome.of(record)


def outcome_field(record: TaskRecord, name: str) -> Any:
    """The outcome field ``name`` as the task stored it: None where it stored none or its
    outcome has no such field. Never the field's default: a view that shows or averages a
    score by name must not show a detection that stored no score as 0.5."""
    if name not in record.scores:
        return None
    return getattr(outcome_of(record), name, None)


def tasks_for(declared: Iterable[Track], requested: Iterable[Track]) -> list[TrackKind]:
    """The tasks a submission runs: the kinds answering the tracks it declares and the run
    asks for, once each, in ``KINDS`` order."""
    wanted = set(declared) & set(requested)
    return [k for k in KINDS if wanted & set(k.answers)]


def required_methods(tracks: Iterable[Track]) -> set[str]:
    """The entry-class methods that ``tracks`` need."""
    return {m for t in tracks for m in (PRODUCERS[t] if t in PRODUCERS else kind_of(t).methods)}


def all_methods() -> list[str]:
    """Every method any track may call, in registry order."""
    return list(dict.fromkeys([m for k in KINDS for m in k.methods] + [*attack.METHODS]))


def worker_calls() -> dict[str, tuple[WorkerCall, bool]]:
    """What the sandbox worker can be asked: call name -> (the call, whether the model it
    was given must keep its weights)."""
    calls: dict[str, tuple[WorkerCall, bool]] = {k.name: (k.call, k.keeps_weights) for k in KINDS}
    calls[EXPORT] = (export_call, False)
    return calls


def aggregate(records: list[TaskRecord]) -> list[Score]:
    """Every zoo-level score of every (submission, track) in a run's records."""
    groups: dict[tuple[str, str], list[TaskRecord]] = {}
    for r in records:
        groups.setdefault((r.submission, r.track), []).append(r)
    out: list[Score] = []
    for (submission, name), recs in sorted(groups.items()):
        if name in _BY_NAME:
            out += aggregate_kind(_BY_NAME[name], submission, recs)
    return out


def aggregate_kind(kind: TrackKind, submission: str, records: list[TaskRecord]) -> list[Score]:
    """One submission's scores on one task kind: each replicate (seed) aggregated alone,
    then combined over the replicates (``over_seeds``)."""
    oracle = any(r.oracle for r in records)
    return over_seeds([kind.aggregate(submission, recs, oracle) for recs in by_seed(records)])
