"""Zoo-level scores: the ``Score`` row, and the stored per-model scores as rows.

Every track aggregates its own records (``TrackKind.aggregate`` in ``harness.tracks``,
each metric with its registered rule); ``harness.tracks.aggregate`` runs them over a run.

A run with several seeds (``harness run --seeds K``) holds K replicates of every task. Each
replicate is aggregated on its own (a full leaderboard of its own, with its bootstrap CI
over models); ``over_seeds`` then reports each metric as the mean over the replicates,
the mean of their CI bounds, and the replicates' sample standard deviation (``spread``):
the CI says how much a score depends on which models the zoo drew, the spread how much it
depends on the defense's own randomness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from harness.results import TaskRecord


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
    seeds: int = 1  # the replicates the value is the mean of
    spread: float | None = None  # their sample standard deviation (seeds > 1)

    def as_json(self, per_model: bool = False) -> dict[str, Any]:
        body = asdict(self)
        if not per_model:
            body.pop("model")
        if not self.oracle:
            body.pop("oracle")
        if self.seeds == 1:
            body.pop("seeds")
            body.pop("spread")
        return body


#: Metrics that count tasks: summed over replicates (every failure counts), not averaged.
SUMMED_OVER_SEEDS = frozenset({"failures"})


def _clean(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def mean_of(values: list[Any]) -> float | None:
    """The mean of the finite numbers among ``values``; None when there are none."""
    vals = [float(v) for v in values if _clean(v) is not None]
    return float(np.mean(vals)) if vals else None


def by_seed(records: list[TaskRecord]) -> list[list[TaskRecord]]:
    """Records split by replicate, in seed order."""
    groups: dict[int, list[TaskRecord]] = {}
    for r in records:
        groups.setdefault(r.replicate, []).append(r)
    return [groups[k] for k in sorted(groups)]


def _spread(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def over_seeds(replicates: list[list[Score]]) -> list[Score]:
    """One score per metric from each replicate's scores: the mean of the finite values
    (the sum for ``SUMMED_OVER_SEEDS``), the mean CI bounds, the sample SD over seeds.
    One replicate comes back as it is."""
    if len(replicates) == 1:
        return replicates[0]
    keyed: dict[tuple[str, str, str | None, str], list[Score]] = {}
    for scores in replicates:
        for s in scores:
            keyed.setdefault((s.submission, s.track, s.model, s.metric), []).append(s)
    out = []
    for (_, _, _, metric), group in keyed.items():
        values = [v for s in group if (v := _clean(s.value)) is not None]
        if not values:
            out.append(replace(group[0], seeds=len(group)))
            continue
        summed = metric in SUMMED_OVER_SEEDS
        value = float(sum(values)) if summed else float(np.mean(values))
        lows = [v for s in group if (v := _clean(s.ci_low)) is not None]
        highs = [v for s in group if (v := _clean(s.ci_high)) is not None]
        both = len(lows) == len(highs) == len(group)
        out.append(
            replace(
                group[0],
                value=value,
                ci_low=float(np.mean(lows)) if both else None,
                ci_high=float(np.mean(highs)) if both else None,
                seeds=len(values),
                spread=None if metric in SUMMED_OVER_SEEDS else _spread(values),
            )
        )
    return out


def per_model(records: list[TaskRecord]) -> list[Score]:
    """One score per (submission, track, model, numeric metric) as stored; over several
    seeds, the mean with its spread (``over_seeds``)."""
    replicates = []
    for recs in by_seed(records):
        scores = []
        for r in recs:
            for key, value in sorted(r.scores.items()):
                v = _clean(value)
                if v is not None:
                    scores.append(
                        Score(r.submission, r.track, key, v, model=r.model_id, oracle=r.oracle)
                    )
        replicates.append(scores)
    return over_seeds(replicates) if replicates else []
