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

from harness import tracks as track_tasks
from harness.api import DETECT_FAMILY, Track
from harness.sandbox.backends import resolve_backend
from harness.sandbox.client import SandboxWorker, WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.store import ResultsStore, TaskRecord
from harness.submission import validate
from harness.submission.manifest import SubmissionSpec
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


def task_tracks(spec: SubmissionSpec, requested: list[Track]) -> list[str]:
    """The worker calls a submission needs: detect covers target and trigger too."""
    wanted = set(spec.tracks) & set(requested)
    out = []
    if wanted & DETECT_FAMILY:
        out.append("detect")
    out += [t.value for t in (Track.FILTER, Track.REPAIR, Track.FUZZ) if t in wanted]
    return out


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
        fuzz_budget: int = track_tasks.FUZZ_BUDGET,
    ) -> None:
        self.spec = spec
        self.limits = limits.capped(spec.resources.wall_seconds_per_model, spec.resources.memory_gb)
        self.worker = SandboxWorker(
            spec.path, spec.entry, spec.params, self.limits, backend, workdir
        )
        self.fatal: str | None = None  # an init failure no restart can fix
        self.fuzz_budget = fuzz_budget
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

    def run(self, run_id: str, model: ZooModel, track: str) -> TaskResult:
        if self.fatal:
            return self._failed(model, track, self.fatal, "")
        try:
            self._ensure()
            return self._run(run_id, model, track)
        except WorkerFailure as exc:
            return self._failed(model, track, exc.reason, exc.stderr[-4000:])

    def request(
        self,
        run_id: str,
        model: ZooModel,
        track: str,
        eval_x: np.ndarray | None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Path]:
        """Start the worker if needed, stage one model's bundle (and ``eval_x``), ask for one
        track: (the worker's reply, the folder its output files are in)."""
        self._ensure()
        poisoned = track_tasks.oracle_sample(model) if self.spec.oracle else None
        anon = anonymous_id(run_id, model.id)
        stage_inbox(self.worker.dirs.inbox, model, anon, eval_x, poisoned)
        out_dir = self.worker.dirs.scratch / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        self.worker.monitor.start_task()
        inbox, scratch = self.worker.inner["inbox"], self.worker.inner["scratch"]
        reply = self.worker.request(
            {
                "op": "run",
                "track": track,
                "bundle": inbox,
                "seed": task_seed(run_id, model.id),
                "out_dir": f"{scratch}/out",
                "eval_x": f"{inbox}/eval_x.npy",
                **(extra or {}),
            },
            self.limits.wall_seconds,
        )
        return reply, out_dir

    def _run(self, run_id: str, model: ZooModel, track: str) -> TaskResult:
        inputs = track_tasks.prepare(track, model, task_seed(run_id, model.id), self.fuzz_budget)
        reply, out_dir = self.request(run_id, model, track, inputs.eval_x, inputs.request)
        stderr = self.worker.monitor.text()[-4000:]
        if not reply.get("ok"):
            return self._failed(model, track, reply.get("error", "unknown error"), stderr)
        try:
            outputs, scores = track_tasks.score(
                track, reply["result"], out_dir, model, inputs, self.predictor
            )
        except (validate.OutputError, KeyError, TypeError) as exc:
            return self._failed(model, track, f"invalid output: {exc}", stderr)
        if track != "repair":
            outputs["weights_changed"] = bool(reply.get("weights_changed"))
        scores["dataset"] = model.card().dataset
        return TaskResult("ok", outputs, scores, None, stderr, float(reply.get("seconds", 0.0)))

    def _failed(self, model: ZooModel, track: str, error: str, stderr: str) -> TaskResult:
        scores = track_tasks.failed_scores(track, model)
        scores["dataset"] = model.card().dataset
        return TaskResult("failed", scores=scores, error=error, stderr=stderr)

    def close(self) -> None:
        self.worker.stop()


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
    fuzz_budget: int = track_tasks.FUZZ_BUDGET,
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
    for spec in specs:
        todo = [
            (m, t)
            for m in serving_order(run_id, models)
            for t in task_tracks(spec, tracks)
            if not results.done(run_id, spec.name, spec.content_hash, m.id, m.hash, t)
        ]
        summary.skipped += len(models) * len(task_tracks(spec, tracks)) - len(todo)
        if not todo:
            continue
        with tempfile.TemporaryDirectory(prefix=f"harness-{spec.name}-") as tmp:
            runner = SubmissionRunner(spec, backend, limits, Path(tmp), fuzz_budget)
            try:
                for model, track in todo:
                    if on_task:
                        on_task(spec.name, model.id, track, None)
                    res = runner.run(run_id, model, track)
                    results.write_task(
                        TaskRecord(
                            run_id,
                            spec.name,
                            spec.content_hash,
                            spec.oracle,
                            model.id,
                            model.hash,
                            track,
                            res.status,
                            res.outputs,
                            res.scores,
                            res.error,
                            res.stderr,
                            res.seconds,
                            runner.isolation,
                        )
                    )
                    summary.done += 1
                    summary.failed += res.status != "ok"
                    if on_task:
                        on_task(spec.name, model.id, track, res)
            finally:
                runner.close()
    return summary
