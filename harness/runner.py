"""Run submissions x zoo x tracks through the sandbox and store every task's scores.

Local and sequential: one warm sandbox worker per submission serves every model. Each task
is written to the results store once, atomically, right after it finishes; tasks already
in the store (same submission and model content) are skipped, so a rerun resumes.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import DEFAULT_FUZZ_BUDGET, Track
from harness.sandbox.backends import resolve_backend
from harness.sandbox.client import SandboxWorker, WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.store import ModelFacts, ResultsStore, TaskRecord
from harness.submission import validate
from harness.submission.manifest import SubmissionSpec
from harness.tracks import RunOptions, TrackKind, tasks_for
from harness.zoo.inbox import anonymous_id, serving_order, stage_inbox
from harness.zoo.predict import ModelPredictor
from harness.zoo.store import ZooModel, ZooStore


@dataclass
class TaskResult:
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stderr: str | None = None
    seconds: float | None = None


#: Poisoned test images handed to oracle submissions as ``CleanData.poisoned``.
ORACLE_POISONED = 100


def oracle_sample(model: ZooModel) -> np.ndarray:
    """The few poisoned test images an oracle submission sees (empty for clean models)."""
    return model.test_sets().x_poisoned[:ORACLE_POISONED].astype(np.float32)


def task_seed(run_id: str, model_id: str) -> int:
    return int(hashlib.sha256(f"seed/{run_id}/{model_id}".encode()).hexdigest()[:8], 16) % 2**31


class SubmissionRunner:
    """Runs one submission's tasks, restarting its worker after any crash."""

    def __init__(
        self,
        spec: SubmissionSpec,
        backend: str,
        limits: SandboxLimits,
        workdir: Path,
        options: RunOptions | None = None,
    ) -> None:
        self.spec = spec
        self.limits = limits.capped(spec.resources.wall_seconds_per_model, spec.resources.memory_gb)
        self.worker = SandboxWorker(
            spec.path, spec.entry, spec.params, self.limits, backend, workdir
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

    def run(self, run_id: str, model: ZooModel, kind: TrackKind) -> TaskResult:
        if self.fatal:
            return self._failed(model, kind, self.fatal, "")
        try:
            self._ensure()
            return self._run(run_id, model, kind)
        except WorkerFailure as exc:
            return self._failed(model, kind, exc.reason, exc.stderr[-4000:])

    def request(
        self,
        run_id: str,
        model: ZooModel,
        call: str,
        eval_x: np.ndarray | None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Path]:
        """Start the worker if needed, stage one model's bundle (and ``eval_x``), make one
        worker call: (the worker's reply, the folder its output files are in)."""
        self._ensure()
        poisoned = oracle_sample(model) if self.spec.oracle else None
        anon = anonymous_id(run_id, model.id)
        stage_inbox(self.worker.dirs.inbox, model, anon, eval_x, poisoned)
        out_dir = self.worker.dirs.scratch / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        self.worker.monitor.start_task()
        inbox, scratch = self.worker.inner["inbox"], self.worker.inner["scratch"]
        reply = self.worker.request(
            {
                "op": "run",
                "track": call,
                "bundle": inbox,
                "seed": task_seed(run_id, model.id),
                "out_dir": f"{scratch}/out",
                "eval_x": f"{inbox}/eval_x.npy",
                **(extra or {}),
            },
            self.limits.wall_seconds,
        )
        return reply, out_dir

    def _run(self, run_id: str, model: ZooModel, kind: TrackKind) -> TaskResult:
        inputs = kind.prepare(model, task_seed(run_id, model.id), self.options)
        reply, out_dir = self.request(run_id, model, kind.name, inputs.eval_x, inputs.request)
        stderr = self.worker.monitor.text()[-4000:]
        if not reply.get("ok"):
            return self._failed(model, kind, str(reply.get("error", "unknown error")), stderr)
        # Only a reply outside the contract counts against the submission: any other
        # exception here is a fault of the harness's own scoring and stops the run.
        try:
            result = validate.reply_object(reply.get("result"), "result")
            outputs, scores = kind.score(result, out_dir, model, inputs, self.predictor)
        except validate.OutputError as exc:
            return self._failed(model, kind, f"invalid output: {exc}", stderr)
        if kind.keeps_weights:
            outputs["weights_changed"] = bool(reply.get("weights_changed"))
        seconds = _seconds(reply.get("seconds"))
        return TaskResult("ok", outputs, scores.to_json(), None, stderr, seconds)

    def _failed(self, model: ZooModel, kind: TrackKind, error: str, stderr: str) -> TaskResult:
        scores = kind.failed(model).to_json()
        return TaskResult("failed", scores=scores, error=error, stderr=stderr)

    def close(self) -> None:
        self.worker.stop()


def model_facts(model: ZooModel) -> ModelFacts:
    """What the store keeps about a task's model, so that no view needs the zoo."""
    truth = model.truth()
    return ModelFacts(
        poisoned=truth.poisoned,
        role=truth.role,
        dataset=model.card().dataset,
        attack=truth.attack,
        targets=tuple(int(t) for t in truth.targets),
    )


def _seconds(value: Any) -> float | None:
    """The task time the worker reports (it runs in the sandbox: checked like any output)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


ProgressFn = Callable[[str, str, str, TaskResult | None], None]


@dataclass
class RunSummary:
    run_id: str
    done: int = 0
    skipped: int = 0
    failed: int = 0


def run_submissions(
    specs: list[SubmissionSpec],
    profile: str,
    tracks: list[Track],
    results: ResultsStore,
    *,
    backend: str = "auto",
    run_id: str | None = None,
    limits: SandboxLimits | None = None,
    zoo: ZooStore | None = None,
    model_ids: list[str] | None = None,
    on_task: ProgressFn | None = None,
    fuzz_budget: int = DEFAULT_FUZZ_BUDGET,
) -> RunSummary:
    """Execute every missing (submission, model, track) task and store it."""
    backend = resolve_backend(backend)  # fail fast on a backend that cannot run here
    zoo = zoo or ZooStore()
    models = zoo.models(profile)
    if model_ids:
        models = [m for m in models if m.id in set(model_ids)]
    run_id = run_id or profile
    zoo.migrate_stale(models)  # a cache from before format 2 leaks its build time
    results.ensure_run(run_id, profile, zoo.zoo_hash(profile))
    summary = RunSummary(run_id)
    limits = limits or SandboxLimits()
    options = RunOptions(fuzz_budget=fuzz_budget)
    for spec in specs:
        kinds = tasks_for(spec.tracks, tracks)
        todo = [
            (m, k)
            for m in serving_order(run_id, models)
            for k in kinds
            if not results.done(run_id, spec.name, spec.content_hash, m.id, m.hash, k.name)
        ]
        summary.skipped += len(models) * len(kinds) - len(todo)
        if not todo:
            continue
        with tempfile.TemporaryDirectory(prefix=f"harness-{spec.name}-") as tmp:
            runner = SubmissionRunner(spec, backend, limits, Path(tmp), options)
            try:
                for model, kind in todo:
                    if on_task:
                        on_task(spec.name, model.id, kind.name, None)
                    res = runner.run(run_id, model, kind)
                    results.write_task(
                        TaskRecord(
                            run_id,
                            spec.name,
                            spec.content_hash,
                            spec.oracle,
                            model.id,
                            model.hash,
                            kind.name,
                            res.status,
                            res.outputs,
                            res.scores,
                            res.error,
                            res.stderr,
                            res.seconds,
                            runner.isolation,
                            model_facts(model),
                        )
                    )
                    summary.done += 1
                    summary.failed += res.status != "ok"
                    if on_task:
                        on_task(spec.name, model.id, kind.name, res)
            finally:
                runner.close()
    return summary
