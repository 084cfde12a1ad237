"""Zoo-level scores: the ``Score`` row and the helpers each track's aggregation uses.

Every track aggregates its own records (``TrackKind.aggregate`` in ``harness.tracks``);
``harness.tracks.aggregate`` runs them over a run's records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.store import TaskRecord


@dataclass(frozen=True)
class Score:
    submission: str
    track: str
    metric: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    model: str | None = None
    oracle: bool = False

    def as_json(self, per_model: bool = False) -> dict[str, Any]:
        body = asdict(self)
        if not per_model:
            body.pop("model")
        if not self.oracle:
            body.pop("oracle")
        return body


def _clean(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def mean_of(values: list[Any]) -> float | None:
    """The mean of the finite numbers among ``values``; None when there are none."""
    vals = [float(v) for v in values if _clean(v) is not None]
    return float(np.mean(vals)) if vals else None


def unknown_truth(submission: str, track: str, recs: list[TaskRecord], oracle: bool) -> list[Score]:
    """How many models were left out of the aggregates because their truth is unknown."""
    n = sum(r.scores.get("poisoned") is None for r in recs)
    return [Score(submission, track, "unknown_truth", float(n), oracle=oracle)] if n else []


def failures_and_means(
    submission: str, track: str, recs: list[TaskRecord], oracle: bool, on_bad: tuple[str, ...]
) -> list[Score]:
    """Failures, then the mean of each ``on_bad`` metric over the backdoored models."""
    bad = [r for r in recs if r.scores.get("poisoned") is True]
    failures = float(sum(r.status != "ok" for r in recs))
    out = [
        Score(submission, track, "failures", failures, oracle=oracle),
        *unknown_truth(submission, track, recs, oracle),
    ]
    for key in on_bad:
        value = mean_of([r.scores.get(key) for r in bad])
        if value is not None:
            out.append(Score(submission, track, key, value, oracle=oracle))
    return out


def per_model(records: list[TaskRecord]) -> list[Score]:
    """One score per (submission, track, model, numeric metric) as stored."""
    out = []
    for r in records:
        for key, value in sorted(r.scores.items()):
            v = _clean(value)
            if v is not None:
                out.append(Score(r.submission, r.track, key, v, model=r.model_id, oracle=r.oracle))
    return out
