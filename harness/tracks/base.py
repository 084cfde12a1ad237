"""What a track is: one kind of task a submission answers for one model, end to end.

A ``TrackKind`` owns everything about its task, in one module per track (``detect.py``,
``filter.py``, ...): the entry-class methods it needs, the call the sandbox worker makes,
the evaluation inputs it sends, the validation and scoring of the reply, what a failed task
counts as, the aggregation over a zoo, its leaderboard table and ranking, and what its
conformance check compares. The runner, the worker, aggregation, the leaderboard and
``harness submission check`` only iterate over the registry in ``harness.tracks``: a new
track is one new module and one line there. (The design follows lm-evaluation-harness's
task registry, where each task declares its metrics and their aggregation.)

Host side and worker side live together, so a track module imports only NumPy and harness
modules that do not load TensorFlow, scikit-learn or pandas at import: the sandbox worker
imports the registry to find its calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from harness.api import DEFAULT_FUZZ_BUDGET, Track
from harness.errors import HarnessError
from harness.results import TaskRecord
from harness.scoring.aggregate import Score, mean_of
from harness.scoring.metrics import METRICS
from harness.zoo.evalset import draw_eval_set

if TYPE_CHECKING:
    from harness.zoo.evalset import EvalSet
    from harness.zoo.predict import ModelPredictor
    from harness.zoo.store import TestSets, ZooModel

OutcomeT = TypeVar("OutcomeT", bound="Outcome")

#: ``call(instance, model, clean, request, out_dir) -> reply``: runs in the sandbox worker
#: on a fresh instance of the entry class; arrays go to ``out_dir``, their file names into
#: the JSON reply.
WorkerCall = Callable[[Any, Any, Any, dict[str, Any], Path], dict[str, Any]]

#: What scoring one reply returns: (outputs to store, the outcome).
Scored = tuple[dict[str, Any], "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """One task's per-model scores; each track subclasses it with its fields. A field left
    None was not measured (a clean model has no ASR) and is not stored."""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls: type[OutcomeT], raw: dict[str, Any]) -> OutcomeT:
        """The outcome a stored row holds (``harness.results.records`` has brought older
        rows to the current form); a key this version does not know is an error, never
        dropped: the row was written by a newer harness, and its scores would be misread."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise HarnessError(
                f"a stored {cls.__name__} has scores this harness does not know "
                f"({', '.join(unknown[:5])})",
                fix="read the store with the harness version that wrote it, or a newer one",
            )
        return cls(**raw)

    @classmethod
    def of(cls: type[OutcomeT], record: TaskRecord) -> OutcomeT:
        """The outcome ``record`` stores, typed: what views read instead of the scores'
        JSON keys. ``WrongTrack`` when the record is another track's task (its scores would
        be misread, or refused as unknown). A missing field reads as its default, so a view
        that told "not stored" apart must still guard as it did (a detection's ``score``
        defaults to 0.5; ``harness.tracks.outcome_field`` reads None there). Decoded on
        every call: a record is frozen and a view reads at most a few hundred."""
        track = _STORED_BY.get(cls)
        if track is None:
            raise TypeError(f"{cls.__name__} is no track's outcome")
        check_track(record, track, cls.__name__)
        return cls.from_json(record.scores)


#: Each track's outcome class -> the name of the track whose tasks store it: what
#: ``Outcome.of`` checks a record by. Each ``TrackKind`` binds its own when it is defined,
#: here rather than in the registry, which imports this module.
_STORED_BY: dict[type[Outcome], str] = {}


class WrongTrack(ValueError):
    """A record read as the outcome or outputs of a track it is not a task of."""


def check_track(record: TaskRecord, track: str, what: str) -> None:
    """``WrongTrack`` unless ``record`` is a task of ``track``."""
    if record.track != track:
        raise WrongTrack(
            f"{what} read from a {record.track!r} task ({record.submission} on "
            f"{record.model_id}); it is stored by {track!r} tasks only"
        )


#: Which models a mean runs over: by their truth.
OVER = {
    "backdoored": lambda r: r.facts.poisoned is True,
    "clean": lambda r: r.facts.poisoned is False,
    "known": lambda r: r.facts.poisoned is not None,
    "any": lambda r: True,
}


@dataclass(frozen=True)
class Metric:
    """A zoo-level metric of a track with its aggregation rule. The direction (higher or
    lower is better) and description are registered in ``harness.scoring.metrics.METRICS``.

    ``rule`` "mean": the mean of the outcome field ``of`` (default: the metric's name) over
    the models ``over`` selects, with a failed task counting ``failed`` ("stored": what
    ``TrackKind.failed`` stored, usually nothing; "skip": left out; a number: that number)
    and an unmeasured field counting ``absent`` (None: left out). Any other rule is
    computed by the track's own ``aggregate`` and names what it computes."""

    name: str
    rule: str = "mean"
    over: str = "backdoored"
    of: str | None = None
    failed: str | float = "stored"
    absent: float | None = None
    track: str | None = None  # reported under this track (default: the task's own)

    def __post_init__(self) -> None:
        if self.name not in METRICS:
            raise ValueError(f"metric {self.name!r} is not registered in scoring.metrics")
        if self.over not in OVER:
            raise ValueError(f"metric {self.name!r}: unknown model set {self.over!r}")

    def mean(self, pairs: list[tuple[TaskRecord, Outcome]]) -> float | None:
        values: list[Any] = []
        for rec, outcome in pairs:
            if not OVER[self.over](rec):
                continue
            if rec.status != "ok" and self.failed != "stored":
                if self.failed != "skip":
                    values.append(self.failed)
                continue
            value = getattr(outcome, self.of or self.name, None)
            values.append(self.absent if value is None else value)
        return mean_of(values)


#: Inputs per call when a worker call answers many inputs (predict, flag).
PREDICT_BATCH = 256


# -- helpers of the worker calls (inside the sandbox) ---------------------------------------
def save_array(out: Path, name: str, value: Any) -> str:
    """Save a reply array to the worker's output folder; its file name for the reply."""
    np.save(out / f"{name}.npy", np.asarray(value), allow_pickle=False)
    return f"{name}.npy"


def jsonable_float(value: Any) -> Any:
    """A float for the JSON reply, or a short repr the host's validation will refuse."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)[:200]


def batched(fn: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """``fn`` over ``x`` in batches of PREDICT_BATCH, concatenated."""
    parts = [np.asarray(fn(x[i : i + PREDICT_BATCH])) for i in range(0, len(x), PREDICT_BATCH)]
    return np.concatenate(parts) if parts else np.zeros(0)


def finite(value: Any) -> Any:
    """A score value for the store: non-finite floats become None, others pass unchanged."""
    if isinstance(value, float):
        return float(value) if np.isfinite(value) else None
    return value


@dataclass(frozen=True)
class RunOptions:
    """The options of one run that tracks read when they prepare a task."""

    fuzz_budget: int = DEFAULT_FUZZ_BUDGET


@dataclass
class TaskInputs:
    """What one task sends besides the public bundle, and what scoring needs back."""

    eval_set: EvalSet | None = None
    sets: TestSets | None = None
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_x(self) -> np.ndarray | None:
        return None if self.eval_set is None else self.eval_set.x

    def need_eval_set(self) -> EvalSet:
        if self.eval_set is None:
            raise RuntimeError("the task was prepared without its evaluation inputs")
        return self.eval_set

    def need_sets(self) -> TestSets:
        if self.sets is None:
            raise RuntimeError("the task was prepared without its test sets")
        return self.sets


def mixed_test_inputs(model: ZooModel, seed: int) -> TaskInputs:
    """The shuffled clean and poisoned test images a repair or filter task answers (the
    ``EvalSet`` drawn with the task's seed), and the test sets that score them."""
    sets = model.test_sets()
    return TaskInputs(draw_eval_set(sets, seed), sets)


@dataclass(frozen=True)
class Table:
    """A track's leaderboard table: title, columns in order, and the two ranking metrics
    (the second breaks ties of the first; each sorts in its registered direction)."""

    title: str
    columns: tuple[str, ...]
    rank_by: tuple[str, str]


@dataclass(frozen=True)
class Heat:
    """One cell metric of the attack x defense matrix: the metric over each attack
    family's models. ``chance`` is what a defense that does nothing scores (AUC 0.5, DER
    0.5; a rate 0): at chance or worse a cell shows "evaded", at its best "caught"."""

    metric: str
    chance: float = 0.0

    def goodness(self, value: float) -> float:
        """0 (evaded: chance or worse) .. 1 (caught), in the metric's direction."""
        if METRICS[self.metric].higher_is_better:
            return float(np.clip((value - self.chance) / (1.0 - self.chance), 0.0, 1.0))
        return float(np.clip(1.0 - value, 0.0, 1.0))


@dataclass(frozen=True)
class SameSeed:
    """What must repeat exactly when a task runs twice with one seed (conformance): these
    keys of the stored ``outputs`` or of the ``scores``."""

    where: str
    keys: tuple[str, ...]


class TrackKind(ABC):
    """One scored task kind; subclasses set the class attributes, ``call`` and ``score``."""

    #: The task's name in the store, the protocol and the progress lines.
    name: ClassVar[str]
    #: The tracks (``Track`` values) this one task answers, and reports scores under.
    answers: ClassVar[tuple[Track, ...]]
    #: Methods the entry class needs for this task.
    methods: ClassVar[tuple[str, ...]]
    #: False where the task may change the model it was given (a repair returns a new one).
    keeps_weights: ClassVar[bool] = True
    #: True where the task hands the submission the model's poisoned test images (filter,
    #: repair): a job runs such tasks after the others, so that no task of the same model
    #: scored on what it makes (a fuzzer's inputs, a reconstructed trigger) can replay them.
    shows_poisoned_inputs: ClassVar[bool] = False
    #: The per-model outcome a task stores.
    outcome: ClassVar[type[Outcome]]
    #: The zoo-level metrics, in the order they are reported ("failures" and
    #: "unknown_truth" come first for every track).
    metrics: ClassVar[tuple[Metric, ...]]
    table: ClassVar[Table]
    same_seed: ClassVar[SameSeed]
    #: The attack x defense matrices the report draws for this track (none by default).
    matrix: ClassVar[tuple[Heat, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        outcome = cls.__dict__.get("outcome")
        if outcome is not None and _STORED_BY.setdefault(outcome, cls.name) != cls.name:
            raise TypeError(f"{outcome.__name__} is stored by {_STORED_BY[outcome]!r} already")

    def prepare(self, model: ZooModel, seed: int, options: RunOptions) -> TaskInputs:
        """The evaluation inputs sent with the bundle (none by default)."""
        return TaskInputs()

    @staticmethod
    @abstractmethod
    def call(
        instance: Any, model: Any, clean: Any, req: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        """The worker's side: call the entry class's methods, save arrays, return the reply."""

    @abstractmethod
    def score(
        self,
        result: dict[str, Any],
        out_dir: Path,
        model: ZooModel,
        inputs: TaskInputs,
        predictor: ModelPredictor,
    ) -> Scored:
        """(outputs to store, outcome) of one reply; raises ``OutputError`` when invalid."""

    def failed(self, model: ZooModel) -> Outcome:
        """The outcome a failed task counts as (nothing measured, by default)."""
        return self.outcome()

    # -- aggregation --------------------------------------------------------------------
    def aggregate(self, submission: str, records: list[TaskRecord], oracle: bool) -> list[Score]:
        """The track's zoo-level scores of one submission: failures, models of unknown
        truth, then every metric in ``metrics`` the records allow."""
        pairs = [(r, self.outcome.from_json(r.scores)) for r in records]
        out = self.failures(submission, pairs, oracle)
        for metric in self.metrics:
            track = self.track_of(metric)
            if metric.rule == "mean":
                value = metric.mean(pairs)
                score = None if value is None else Score(submission, track, metric.name, value)
            else:
                score = self.compute(metric, submission, pairs)
            if score is not None:
                out.append(replace(score, oracle=oracle))
        return out

    def failures(
        self, submission: str, pairs: list[tuple[TaskRecord, Outcome]], oracle: bool
    ) -> list[Score]:
        """Failed tasks, and models left out for their unknown truth (when there are)."""
        failed = float(sum(r.status != "ok" for r, _ in pairs))
        out = [Score(submission, self.name, "failures", failed, oracle=oracle)]
        return out + self.unknown_truth(submission, pairs, oracle)

    def unknown_truth(
        self, submission: str, pairs: list[tuple[TaskRecord, Outcome]], oracle: bool
    ) -> list[Score]:
        n = sum(r.facts.poisoned is None for r, _ in pairs)
        return [Score(submission, self.name, "unknown_truth", float(n), oracle=oracle)] if n else []

    def compute(
        self, metric: Metric, submission: str, pairs: list[tuple[TaskRecord, Outcome]]
    ) -> Score | None:
        """A metric whose rule is not a plain mean (the track's own)."""
        raise ValueError(f"track {self.name} has no rule {metric.rule!r} (metric {metric.name})")

    def track_of(self, metric: Metric) -> str:
        """The track a metric is reported under (the kind's own unless it names one)."""
        return metric.track or self.name

    def __repr__(self) -> str:
        return f"<track {self.name}>"
