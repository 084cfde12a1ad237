"""Points from stored task records, by the rubric: every line, the failures' cost, rank
points among the graded hand-ins, and the late factor. Nothing here runs a submission, so
a changed rubric re-scores a graded batch from the results store alone."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.errors import FailureKind
from harness.grading.rubric import Line, Rubric
from harness.report.numbers import human
from harness.results import TaskRecord
from harness.scoring.aggregate import Score
from harness.tracks import aggregate, kind_of, outcome_field
from harness.tracks.base import OVER

#: A rubric line's model set -> the tracks' own model selections (``harness.tracks.base.OVER``).
_MODELS = {"backdoored": OVER["backdoored"], "clean": OVER["clean"], "all": OVER["known"]}


@dataclass(frozen=True)
class LinePoints:
    name: str
    points: float
    max_points: float
    value: float | None  # the measured value (per-model lines: the mean over the models)
    detail: str


@dataclass
class Grade:
    """One student's grade. ``error``: the hand-in never ran (unpack, manifest, check)."""

    student: str
    lines: list[LinePoints] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "track / model: reason"
    failure_penalty: float = 0.0
    rank: int | None = None
    rank_points: float = 0.0
    late_days: int = 0
    late_factor: float = 1.0
    error: str | None = None
    error_kind: str | None = None
    failure_kinds: list[FailureKind] = field(default_factory=list)  # each failure's kind

    @property
    def total(self) -> float:
        raw = sum(line.points for line in self.lines) - self.failure_penalty + self.rank_points
        return round(max(0.0, raw) * self.late_factor, 4)


def line_points(line: Line, records: list[TaskRecord], scores: list[Score]) -> LinePoints:
    """The points of one rubric line from one hand-in's records and zoo-level scores."""
    kind = kind_of(line.track)
    if not line.per_model:
        value = next(
            (s.value for s in scores if s.track == line.track.value and s.metric == line.metric),
            None,
        )
        share = line.scale.share(value)
        detail = f"{line.metric} {human(line.metric, value)}"
        if value is None:
            detail += " (not measured: no successful task of this track)"
        return LinePoints(line.name, line.points * share, line.points, value, detail)
    mine = [r for r in records if r.track == kind.name and _MODELS[line.models](r)]
    if not mine:
        which = "" if line.models == "all" else f"{line.models} "
        return LinePoints(
            line.name, 0.0, line.points, None, f"no {which}model was run on {kind.name}"
        )
    shares, values, parts = [], [], []
    for r in sorted(mine, key=lambda r: r.model_id):
        v = outcome_field(r, line.metric) if r.status == "ok" else None
        v = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
        shares.append(line.scale.share(v))
        if v is not None:
            values.append(v)
        parts.append(
            f"{r.model_id} {human(line.metric, v)}" + ("" if r.status == "ok" else " (failed)")
        )
    mean = float(np.mean(values)) if values else None
    return LinePoints(
        line.name, line.points * float(np.mean(shares)), line.points, mean, "; ".join(parts)
    )


def grade_records(student: str, rubric: Rubric, records: list[TaskRecord]) -> Grade:
    """A hand-in's grade before rank points and lateness."""
    scores = aggregate(records)
    grade = Grade(student, [line_points(line, records, scores) for line in rubric.lines])
    failed = [r for r in records if r.status != "ok"]
    grade.failures = [f"{r.track} / {r.model_id}: {r.error}" for r in failed]
    grade.failure_kinds = [r.failure or FailureKind.CRASH for r in failed]
    grade.failure_penalty = min(rubric.failure_points * len(grade.failures), rubric.failure_max)
    return grade


def rank_metric(rubric: Rubric, records: list[TaskRecord]) -> float | None:
    """The zoo-level value the rubric ranks hand-ins by (None: not measured)."""
    if rubric.rank is None:
        return None
    for s in aggregate(records):
        if s.track == rubric.rank.track.value and s.metric == rubric.rank.metric:
            return s.value
    return None


def add_ranks(grades: list[Grade], values: dict[str, float | None], rubric: Rubric) -> None:
    """Rank points: the best value first in the metric's direction; equal values share the
    better rank; a hand-in without a value gets none."""
    if rubric.rank is None:
        return
    sign = -1.0 if rubric.rank.higher_is_better else 1.0
    ranked = sorted(
        (sign * v, g.student)
        for g in grades
        if (v := values.get(g.student)) is not None and math.isfinite(v)
    )
    by_student = {g.student: g for g in grades}
    previous, rank = None, 0
    for i, (key, student) in enumerate(ranked):
        if key != previous:
            rank, previous = i + 1, key
        g = by_student[student]
        g.rank = rank
        g.rank_points = rubric.rank.points[rank - 1] if rank <= len(rubric.rank.points) else 0.0
