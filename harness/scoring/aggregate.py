"""Zoo-level scores: the ``Score`` row, and the stored per-model scores as rows.

Every track aggregates its own records (``TrackKind.aggregate`` in ``harness.tracks``,
each metric with its registered rule); ``harness.tracks.aggregate`` runs them over a run.
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


def per_model(records: list[TaskRecord]) -> list[Score]:
    """One score per (submission, track, model, numeric metric) as stored."""
    out = []
    for r in records:
        for key, value in sorted(r.scores.items()):
            v = _clean(value)
            if v is not None:
                out.append(Score(r.submission, r.track, key, v, model=r.model_id, oracle=r.oracle))
    return out
