"""What every report of a run is rendered from: the run's records and scores, the ranking
of each track, the time each submission took, and the figures of a reproduction.

The Markdown, the CSV and the HTML site all read one ``RunView``, so their numbers agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from harness.attack_track.score import AttackRow, attack_rows
from harness.errors import FailureKind, HarnessError
from harness.results import ResultsStore, TaskRecord
from harness.scoring.aggregate import Score
from harness.scoring.metrics import METRICS
from harness.submission.manifest import is_variant
from harness.tracks import KINDS, TrackKind, aggregate


def resolve_run(store: ResultsStore, run_id: str | None) -> str:
    """``run_id``, or the latest run; a HarnessError naming the known runs otherwise."""
    run = run_id or store.latest_run()
    if run is None:
        raise HarnessError(
            "the results store holds no run yet",
            path=store.path,
            fix="run `harness run SUBMISSION... --profile P` first",
        )
    if run not in {r["run_id"] for r in store.runs()}:
        known = ", ".join(r["run_id"] for r in store.runs())
        raise HarnessError(
            f"no run {run!r} in the results store", path=store.path, fix=f"known runs: {known}"
        )
    return run


@dataclass(frozen=True)
class RankedRow:
    """One submission's line of a track's table: its scores by metric. Oracle entries
    (handed poisoned samples) are shown but never ranked: their rank is None."""

    rank: int | None
    submission: str
    oracle: bool
    cells: dict[str, Score]
    #: the rank of the row above when this row's first ranking metric is within the seed
    #: spread of it (``within_spread``): over the seeds, the two are not told apart
    tied_with: int | None = None

    def value(self, metric: str) -> float | None:
        cell = self.cells.get(metric)
        return None if cell is None else cell.value


def ranking(scores: list[Score], kind: TrackKind) -> list[RankedRow]:
    """The rows of ``kind``'s table, best first by its two ranking metrics (each in its
    registered direction; a missing value last); oracle entries after the ranked ones."""
    tracks = {t.value for t in kind.answers}
    cells: dict[tuple[str, bool], dict[str, Score]] = {}
    for s in scores:
        if s.track in tracks and s.metric in kind.table.columns:
            cells.setdefault((s.submission, s.oracle), {})[s.metric] = s

    def key(item: tuple[tuple[str, bool], dict[str, Score]]) -> tuple[Any, ...]:
        (name, oracle), row = item
        parts: list[Any] = [oracle]
        for metric in kind.table.rank_by:
            v = row[metric].value if metric in row else None
            missing = v is None or not np.isfinite(v)
            sign = -1.0 if METRICS[metric].higher_is_better else 1.0
            parts += [missing, 0.0 if missing else sign * float(v)]  # type: ignore[arg-type]
        return (*parts, name)

    rows: list[RankedRow] = []
    rank, above = 0, None
    first_metric = kind.table.rank_by[0]
    for (name, oracle), row in sorted(cells.items(), key=key):
        if oracle:
            rows.append(RankedRow(None, name, oracle, row))
            continue
        rank += 1
        mine = row.get(first_metric)
        tied = above is not None and within_spread(above[1], mine)
        rows.append(RankedRow(rank, name, oracle, row, above[0] if tied and above else None))
        above = (rank, mine)
    return rows


def within_spread(a: Score | None, b: Score | None) -> bool:
    """Are two entries' scores on a metric closer than the larger of their standard
    deviations over seeds? Only scores measured under several seeds can be."""
    if a is None or b is None or a.value is None or b.value is None:
        return False
    spreads = [s for s in (a.spread, b.spread) if s is not None and np.isfinite(s)]
    return bool(spreads) and abs(a.value - b.value) <= max(spreads)


@dataclass(frozen=True)
class Runtime:
    """How long one submission's tasks of one track took, against their budget."""

    submission: str
    track: str
    tasks: int
    mean: float | None
    max: float | None
    total: float  # seconds of every task together (the run's cost, not its wall clock)
    budget: float | None  # the wall-clock limit per task (None: not recorded)
    timeouts: int
    isolation: str  # the sandbox's isolation level(s) its tasks ran under


def runtimes(records: list[TaskRecord]) -> list[Runtime]:
    """Per (submission, track): mean and max seconds of the tasks that answered."""
    groups: dict[tuple[str, str], list[TaskRecord]] = {}
    for r in records:
        groups.setdefault((r.submission, r.track), []).append(r)
    out = []
    for (sub, track), recs in sorted(groups.items()):
        secs = [r.seconds for r in recs if r.seconds is not None]
        budgets = [r.budget for r in recs if r.budget is not None]
        out.append(
            Runtime(
                sub,
                track,
                len(recs),
                float(np.mean(secs)) if secs else None,
                float(max(secs)) if secs else None,
                float(sum(secs)),
                max(budgets) if budgets else None,
                sum(r.failure is FailureKind.TIMEOUT for r in recs),
                ", ".join(sorted({r.isolation for r in recs})),
            )
        )
    return out


def by_dataset(
    records: list[TaskRecord], known: dict[str, str] | None = None
) -> dict[str, list[TaskRecord]]:
    """Task records grouped by their model's data set. Records stored before the data set
    was recorded take it from ``known`` (model id -> data set, from the built zoo)."""
    known = known or {}
    groups: dict[str, list[TaskRecord]] = {}
    for r in records:
        name = r.facts.dataset or known.get(r.model_id, "unknown data set")
        groups.setdefault(str(name), []).append(r)
    return dict(sorted(groups.items()))


def zoo_datasets(profile: str) -> dict[str, str]:
    """Model id -> data set from the built zoo (empty when it is not built here)."""
    from harness.errors import ZooError
    from harness.zoo.store import ZooStore

    try:
        return {m.id: m.card().dataset for m in ZooStore().models(profile)}
    except (ZooError, OSError):
        return {}


def seeds_note(seeds: int) -> str:
    """What a report says about the seeds (nothing for a run of one)."""
    if seeds < 2:
        return ""
    return (
        f" Scores are means over up to {seeds} seeds (`harness run --seeds`), ± their standard "
        "deviation over the seeds beside the CI over models; a rank marked ≈ N is within "
        "that spread of rank N, so the two are not told apart."
    )


def task_label(r: TaskRecord) -> str:
    """A task's model, and its seed when it is not the first replicate."""
    return r.model_id + (f" (seed {r.replicate})" if r.replicate else "")


def first(records: list[TaskRecord]) -> list[TaskRecord]:
    """The first replicate's records (seed 0): what a per-model plot draws."""
    return [r for r in records if r.replicate == 0]


@dataclass(frozen=True)
class Coverage:
    """How many of a run's models one entry's track has a stored task for."""

    submission: str
    track: str
    models: int
    of: int

    def __str__(self) -> str:
        return f"{self.submission} {self.track}: {self.models} of {self.of} models"


def incomplete_note(gaps: list[Coverage]) -> str:
    """One sentence for a report's head when some entries have not run on every model."""
    if not gaps:
        return ""
    return (
        "Incomplete run: " + "; ".join(map(str, gaps)) + ". Their scores cover fewer "
        "models than the others', so their ranks do not compare (a run stopped part-way "
        "finishes when its command is given again)."
    )


@dataclass
class RunView:
    """A run as its reports show it. ``records`` are the entries' tasks, every replicate
    of them (``harness run --seeds K``; ``primary`` is the first alone); the parameter
    variants `harness reproduce` adds to a run it shares (``NAME@PARAMS``) are ablations
    of a figure on a few models, not entries, and are only named in ``variants``."""

    run_id: str
    info: dict[str, Any]
    records: list[TaskRecord]
    variants: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    #: The attack track's table, when the run scored attack hand-ins (harness attack run).
    attacks: list[AttackRow] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return str(self.info["profile"])

    @cached_property
    def scores(self) -> list[Score]:
        return aggregate(self.records)

    @cached_property
    def datasets(self) -> dict[str, list[TaskRecord]]:
        known = {} if all(r.facts.dataset for r in self.records) else zoo_datasets(self.profile)
        return by_dataset(self.records, known)

    @property
    def primary(self) -> list[TaskRecord]:
        return first(self.records)

    @property
    def seeds(self) -> int:
        """The most replicates any entry's task has."""
        return 1 + max((r.replicate for r in self.records), default=0)

    @property
    def model_ids(self) -> list[str]:
        return sorted({r.model_id for r in self.records})

    @property
    def submissions(self) -> list[str]:
        return sorted({r.submission for r in self.records})

    @property
    def unknown_truth(self) -> list[str]:
        return sorted({r.model_id for r in self.records if r.facts.poisoned is None})

    @property
    def failures(self) -> list[TaskRecord]:
        return [r for r in self.records if r.status != "ok"]

    @property
    def isolations(self) -> list[str]:
        return sorted({r.isolation for r in self.records})

    def incomplete(self) -> list[Coverage]:
        """Each entry's track that answered fewer of the run's models than the run holds (a
        run stopped part-way, or an entry added later): its scores cover other models than
        the rest, so its rank does not compare with theirs."""
        total = len(self.model_ids)
        answered: dict[tuple[str, str], set[str]] = {}
        for r in self.primary:
            answered.setdefault((r.submission, r.track), set()).add(r.model_id)
        return [
            Coverage(sub, track, len(models), total)
            for (sub, track), models in sorted(answered.items())
            if len(models) < total
        ]

    def rankings(self) -> list[tuple[TrackKind, list[RankedRow]]]:
        """Every track that has scores, with its rows."""
        out = [(kind, ranking(self.scores, kind)) for kind in KINDS]
        return [(kind, rows) for kind, rows in out if rows]


def load_run(store: ResultsStore, run_id: str | None = None) -> RunView:
    """The view of ``run_id`` (default: the latest run) in ``store``."""
    run = resolve_run(store, run_id)
    info = next(r for r in store.runs() if r["run_id"] == run)
    stored = store.tasks(run)
    instances = store.attack_instances(run)
    return RunView(
        run,
        info,
        [r for r in stored if not is_variant(r.submission)],
        sorted({r.submission for r in stored if is_variant(r.submission)}),
        store.figures(run),
        attack_rows(instances, stored) if instances else [],
    )
