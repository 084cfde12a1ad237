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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.api import DEFAULT_FUZZ_BUDGET, Track

if TYPE_CHECKING:
    from harness.scoring.aggregate import Score
    from harness.scoring.evalset import EvalSet
    from harness.store import TaskRecord
    from harness.zoo.predict import ModelPredictor
    from harness.zoo.store import TestSets, ZooModel

#: ``call(instance, model, clean, request, out_dir) -> reply``: runs in the sandbox worker
#: on a fresh instance of the entry class; arrays go to ``out_dir``, their file names into
#: the JSON reply.
WorkerCall = Callable[[Any, Any, Any, dict[str, Any], Path], dict[str, Any]]

#: What scoring one reply returns: (outputs to store, per-model scores).
Scored = tuple[dict[str, Any], dict[str, Any]]


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


@dataclass(frozen=True)
class Table:
    """A track's leaderboard table: title, columns in order, and the two ranking metrics
    (the second breaks ties of the first; each sorts in its registered direction)."""

    title: str
    columns: tuple[str, ...]
    rank_by: tuple[str, str]


@dataclass(frozen=True)
class SameSeed:
    """What must repeat exactly when a task runs twice with one seed (conformance): these
    keys of the stored ``outputs`` or of the ``scores``."""

    where: str
    keys: tuple[str, ...]


class TrackKind:
    """One scored task kind; subclasses set the class attributes and the methods."""

    #: The task's name in the store, the protocol and the progress lines.
    name: ClassVar[str]
    #: The tracks (``Track`` values) this one task answers, and reports scores under.
    answers: ClassVar[tuple[Track, ...]]
    #: Methods the entry class needs for this task.
    methods: ClassVar[tuple[str, ...]]
    #: False where the task may change the model it was given (a repair returns a new one).
    keeps_weights: ClassVar[bool] = True
    table: ClassVar[Table]
    same_seed: ClassVar[SameSeed]

    def prepare(self, model: ZooModel, seed: int, options: RunOptions) -> TaskInputs:
        """The evaluation inputs sent with the bundle (none by default)."""
        return TaskInputs()

    @staticmethod
    def call(
        instance: Any, model: Any, clean: Any, req: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        raise NotImplementedError

    def score(
        self,
        result: dict[str, Any],
        out_dir: Path,
        model: ZooModel,
        inputs: TaskInputs,
        predictor: ModelPredictor,
    ) -> Scored:
        """(outputs to store, scores) of one reply; raises ``OutputError`` when invalid."""
        raise NotImplementedError

    def failed(self, model: ZooModel) -> dict[str, Any]:
        """The scores a failed task counts as."""
        return {"poisoned": model.truth().poisoned}

    def aggregate(self, submission: str, records: list[TaskRecord], oracle: bool) -> list[Score]:
        """The track's zoo-level scores of one submission."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<track {self.name}>"
