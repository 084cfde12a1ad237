"""One task of a submission on one model, in its sandbox: stage the model, call the
track, score the reply.

A :class:`SubmissionRunner` holds one warm sandbox worker for one submission and serves it
model after model (restarting it after a crash); ``harness.execution.jobs`` keeps runners warm
between jobs, ``harness.execution.runner`` plans the jobs and stores what they return.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import FailureKind
from harness.sandbox.client import SandboxWorker, WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.submission import validate
from harness.submission.manifest import SubmissionSpec
from harness.tracks import RunOptions, TrackKind
from harness.zoo.inbox import stage_inbox
from harness.zoo.predict import ModelPredictor
from harness.zoo.runkey import RunKey, run_key
from harness.zoo.store import ZooModel


@dataclass
class TaskResult:
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stderr: str | None = None
    seconds: float | None = None
    failure: FailureKind | None = None  # why it failed, as the harness saw it happen


#: Poisoned test images handed to oracle submissions as ``CleanData.poisoned``.
ORACLE_POISONED = 100


def oracle_sample(model: ZooModel) -> np.ndarray:
    """The few poisoned test images an oracle submission sees (empty for clean models)."""
    return model.test_sets().x_poisoned[:ORACLE_POISONED].astype(np.float32)


def task_seed(run_id: str, model_id: str, key: RunKey | None = None) -> int:
    """The seed a task hands its submission: keyed by the run's secret (``run_key``), so
    that it names no model; the submission can read it back, so it draws nothing else."""
    return (key or run_key(run_id)).task_seed(run_id, model_id)


def eval_seed(run_id: str, model_id: str, key: RunKey | None = None) -> int:
    """The seed of a task's evaluation inputs (``TrackKind.prepare``): from the same key
    as ``task_seed`` under another purpose, and never sent to the sandbox."""
    return (key or run_key(run_id)).eval_seed(run_id, model_id)


def replicate_key(run_id: str, replicate: int) -> str:
    """What a task's randomness is drawn from: the run id for replicate 0 (so a run of one
    seed is what it always was), the run id and the replicate for the others. The task
    seed, the evaluation samples a track draws and the model's anonymous id all follow it,
    so each replicate is a fresh submission instance on a freshly named model (all of
    them keyed by the run's one key, ``harness.zoo.runkey``)."""
    return run_id if replicate == 0 else f"{run_id}#seed{replicate}"


class SubmissionRunner:
    """Runs one submission's tasks, restarting its worker after any crash."""

    def __init__(
        self,
        spec: SubmissionSpec,
        backend: str,
        limits: SandboxLimits,
        workdir: Path,
        options: RunOptions | None = None,
        shared: tuple[tuple[str, Path], ...] = (),
    ) -> None:
        self.spec = spec
        self.limits = limits.capped(spec.resources.wall_seconds_per_model, spec.resources.memory_gb)
        self.worker = SandboxWorker(
            spec.path, spec.entry, spec.params, self.limits, backend, workdir, shared
        )
        self.fatal: str | None = None  # an init failure no restart can fix
        self.options = options or RunOptions()
        self.predictor = ModelPredictor()

    @property
    def isolation(self) -> str:
        return self.worker.isolation

    def _ensure(self) -> None:
        if self.worker.alive:
            return
        reply = self.worker.start()
        if not reply.get("ok"):
            self.fatal = f"{reply.get('kind')}: {reply.get('error')}"
            self.worker.stop()
            raise WorkerFailure(self.fatal, self.worker.monitor.text())

    def run(
        self,
        run_id: str,
        model: ZooModel,
        kind: TrackKind,
        replicate: int = 0,
        key: RunKey | None = None,
    ) -> TaskResult:
        """One task of replicate ``replicate`` (``replicate_key``); ``key`` the run's key
        (by default the one kept for ``run_id`` under ``$HARNESS_HOME``)."""
        if self.fatal:
            return self._failed(model, kind, self.fatal, "")
        try:
            self._ensure()
            return self._run(replicate_key(run_id, replicate), model, kind, key or run_key(run_id))
        except WorkerFailure as exc:
            return self._failed(model, kind, exc.reason, exc.stderr[-4000:], exc.kind)

    def request(
        self,
        run_id: str,
        model: ZooModel,
        call: str,
        eval_x: np.ndarray | None,
        extra: dict[str, Any] | None = None,
        key: RunKey | None = None,
    ) -> tuple[dict[str, Any], Path]:
        """Start the worker if needed, stage one model's bundle (and ``eval_x``), make one
        worker call: (the worker's reply, the folder its output files are in). ``run_id``
        is the replicate's key (``replicate_key``) for a replicate other than 0; ``key``
        the run's key (by default the one kept for ``run_id``)."""
        self._ensure()
        key = key or run_key(run_id)
        poisoned = oracle_sample(model) if self.spec.oracle else None
        anon = key.anonymous_id(run_id, model.id)
        stage_inbox(self.worker.dirs.inbox, model, anon, eval_x, poisoned)
        out_dir = self.worker.dirs.scratch / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        inbox, scratch = self.worker.inner["inbox"], self.worker.inner["scratch"]
        reply = self.worker.request(
            {
                "op": "run",
                "track": call,
                "bundle": inbox,
                "seed": key.task_seed(run_id, model.id),
                # The card's anonymous id: the worker keeps one submission instance per model.
                "model_key": anon,
                "out_dir": f"{scratch}/out",
                "eval_x": f"{inbox}/eval_x.npy",
                **(extra or {}),
            },
            self.limits.wall_seconds,
        )
        return reply, out_dir

    def _run(self, run_id: str, model: ZooModel, kind: TrackKind, key: RunKey) -> TaskResult:
        # The inputs are drawn with the evaluation seed, never with the seed the submission
        # is handed: with that one it could replay the draw and find its stamped inputs.
        inputs = kind.prepare(model, key.eval_seed(run_id, model.id), self.options)
        reply, out_dir = self.request(run_id, model, kind.name, inputs.eval_x, inputs.request, key)
        stderr = self.worker.monitor.text()[-4000:]
        if not reply.get("ok"):
            return self._failed(model, kind, str(reply.get("error", "unknown error")), stderr)
        # Only a reply outside the contract counts against the submission: any other
        # exception here is a fault of the harness's own scoring and stops the run.
        try:
            result = validate.reply_object(reply.get("result"), "result")
            outputs, scores = kind.score(result, out_dir, model, inputs, self.predictor)
        except validate.OutputError as exc:
            failure = FailureKind.INVALID_OUTPUT
            return self._failed(model, kind, f"invalid output: {exc}", stderr, failure)
        if kind.keeps_weights:
            outputs["weights_changed"] = bool(reply.get("weights_changed"))
        return TaskResult("ok", outputs, scores.to_json(), None, stderr, self.worker.last_seconds)

    def _failed(
        self,
        model: ZooModel,
        kind: TrackKind,
        error: str,
        stderr: str,
        failure: FailureKind = FailureKind.CRASH,
    ) -> TaskResult:
        """A failed task; its kind is the harness's own finding (a worker's error reply is
        a crash whatever it says: the worker shares the submission's process)."""
        scores = kind.failed(model).to_json()
        return TaskResult("failed", scores=scores, error=error, stderr=stderr, failure=failure)

    def close(self) -> None:
        self.worker.stop()
