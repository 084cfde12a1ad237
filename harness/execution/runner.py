"""Run submissions x zoo x tracks and store every task's scores: the coordinator.

A run is cut into jobs, one submission's tasks on one model (``harness.execution.jobs``), handed to
an executor (``harness.executors``: in this process, or on Dask) and stored as each job comes
back, by this process alone. Each task is written to the results store once, atomically;
tasks already in the store (same submission and model content) are skipped, so a rerun,
or a run killed at any point and started again, does every task exactly once.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harness.api import Track
from harness.errors import FailureKind, HarnessError
from harness.execution.config import RunConfig
from harness.execution.configure import ensure_configured, training_split
from harness.execution.jobs import ModelJob, close_runners, run_job
from harness.execution.task import TaskResult
from harness.executors import Executor, InProcess
from harness.results import ModelFacts, ResultsStore, TaskRecord, UnstorableTask
from harness.sandbox.backends import resolve_backend
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, content_hash
from harness.tracks import TrackKind, by_name, tasks_for
from harness.zoo.inbox import serving_order
from harness.zoo.runkey import run_key
from harness.zoo.splits import EVAL, of_split
from harness.zoo.store import ZooModel, ZooStore
from harness.zoo.verify import require_sound


class RunProgress(Protocol):
    """What a run reports as it goes (the CLI draws a bar or writes lines with an ETA)."""

    def planned(self, todo: int, skipped: int) -> None:
        """``todo`` tasks will run; ``skipped`` are in the store already."""

    def task_done(self, sub: str, model: str, track: str, res: TaskResult) -> None:
        """One task is stored."""

    def note(self, text: str) -> None:
        """A line about the run that is not a task (a learned detector's configure step)."""


@dataclass
class RunSummary:
    run_id: str
    done: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Plan:
    """One submission on some models of a profile: what `harness run` and each variant of
    `harness reproduce` ask for."""

    spec: SubmissionSpec
    tracks: list[Track]
    model_ids: list[str] | None = None


def run_submissions(
    specs: list[SubmissionSpec],
    profile: str,
    tracks: list[Track],
    results: ResultsStore,
    config: RunConfig = RunConfig(),
    *,
    model_ids: list[str] | None = None,
    executor: Executor | None = None,
    progress: RunProgress | None = None,
) -> RunSummary:
    """Execute every missing (submission, model, track, replicate) task of ``specs`` on the
    models ``model_ids`` of ``profile`` (default: all of them) and store it, as
    ``config`` says (``run_plans``)."""
    plans = [Plan(spec, tracks, model_ids) for spec in specs]
    return run_plans(plans, profile, results, config, executor=executor, progress=progress)


def run_plans(
    plans: list[Plan],
    profile: str,
    results: ResultsStore,
    config: RunConfig = RunConfig(),
    *,
    zoo: ZooStore | None = None,
    executor: Executor | None = None,
    progress: RunProgress | None = None,
) -> RunSummary:
    """Every missing task of ``plans`` under replicates 0 .. ``config.seeds``-1, as jobs of
    one submission on one model, on ``executor`` (default: in this process); each task is
    stored as soon as its job is back, by this process alone, under ``config.run_id``
    (default: ``profile``) with ``config.command``. Learned detectors configure on
    ``config.configure_on``'s training split (default: ``profile``'s). With
    ``config.retry_timeouts`` a task stored as over its wall-clock limit is missing too
    (its record is replaced)."""
    # Fail fast on a backend that cannot run here.
    config = dataclasses.replace(config, backend=resolve_backend(config.backend))
    zoo = zoo or ZooStore()
    run_id = config.run_id or profile
    with results.run_lock(run_id):  # one coordinator per run: no task runs twice
        # The training split is never scored.
        models = of_split(profile, zoo.models(profile), EVAL, zoo)
        zoo.migrate_stale(models)  # a cache from before format 2 leaks its build time
        results.ensure_run(run_id, profile, zoo.zoo_hash(profile), config.command)
        summary = RunSummary(run_id)
        jobs = plan_jobs(plans, models, run_id, results, summary, config)
        require_sound(list({j.model.id: j.model for j in jobs}.values()), profile)
        note = progress.note if progress else None
        configure = config.configure_on or profile
        jobs = configure_jobs(jobs, configure, zoo, config.backend, config.limits, note)
        if progress:
            progress.planned(sum(len(j.tracks) for j in jobs), summary.skipped)
        executor = executor or InProcess()
        try:
            execute(jobs, executor, results, summary, progress)
        finally:
            executor.broadcast(close_runners)
        return summary


#: What stops a whole run rather than one submission: the harness's own refusals, and the
#: machine's (a full disk, an unreadable or locked store); the CLI says each in one line.
OPERATOR_ERRORS = (HarnessError, OSError, sqlite3.Error)


def run_isolated(
    plans: list[Plan],
    profile: str,
    results: ResultsStore,
    config: RunConfig = RunConfig(),
    *,
    zoo: ZooStore | None = None,
    executor: Executor | None = None,
    progress: RunProgress | None = None,
) -> tuple[RunSummary, dict[str, Exception]]:
    """``run_plans``, where one submission's failure is its own: when the run raises
    something other than an operator's error (``OPERATOR_ERRORS``: an unbuilt zoo, a
    locked store, a full disk), it goes on plan by plan (the tasks stored so far are not
    run again), and each plan that raises alone is set aside. (The summary of what ran,
    the exception of each submission set aside, by name.)"""
    run_id = config.run_id or profile
    config = dataclasses.replace(config, run_id=run_id)
    try:
        return run_plans(
            plans, profile, results, config, zoo=zoo, executor=executor, progress=progress
        ), {}
    except OPERATOR_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - which submission? run them one at a time
        if len(plans) < 2:
            return RunSummary(run_id), {plans[0].spec.name: exc} if plans else {}
    total, failures = RunSummary(run_id), {}
    for plan in plans:
        try:
            part = run_plans(
                [plan], profile, results, config, zoo=zoo, executor=executor, progress=progress
            )
        except OPERATOR_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - this submission's failure alone
            failures[plan.spec.name] = exc
            continue
        total.done, total.skipped = total.done + part.done, total.skipped + part.skipped
        total.failed += part.failed
    return total, failures


def configure_jobs(
    jobs: list[ModelJob],
    profile: str,
    zoo: ZooStore,
    backend: str,
    limits: SandboxLimits | None,
    note: Callable[[str], None] | None = None,
) -> list[ModelJob]:
    """Run the configure step of every learned detector with tasks to do (once, before
    its tasks: ``harness.execution.configure``) over ``profile``'s training split, and give its jobs
    the output, or the failure (each outcome told to ``note``). A training split that holds
    a model the jobs evaluate is refused: the detector would have seen that model's truth."""
    specs = {j.spec.name: j.spec for j in jobs if j.spec.configure}
    if specs:
        try:
            training = {m.hash for m in training_split(profile, zoo)}
        except HarnessError:  # the profile is not built: each configure step says so
            training = set()
        shared = sorted({j.model.id for j in jobs if j.model.hash in training})
        if shared:
            raise HarnessError(
                f"the training split of {profile!r} holds {len(shared)} model(s) this run "
                f"evaluates ({', '.join(shared[:3])}): a learned detector would see their truth",
                fix="configure on a profile whose training split is disjoint from the run's models",
            )
    outcomes = {}
    for name, spec in specs.items():
        start = time.perf_counter()
        outcomes[name] = outcome = ensure_configured(spec, profile, zoo, backend, limits)
        if note is not None:
            took = time.perf_counter() - start
            where = f"on {profile!r}'s training split"
            note(
                f"{name}: configure failed {where}: {outcome.error}"
                if outcome.error
                else f"{name}: configured {where} in {took:.1f} s ({outcome.folder})"
            )
    out = []
    for job in jobs:
        done = outcomes.get(job.spec.name)
        if done is not None:
            folder = str(done.folder) if done.folder else None
            job = dataclasses.replace(job, configured=folder, configure_error=done.error)
        out.append(job)
    return out


def plan_jobs(
    plans: list[Plan],
    models: list[ZooModel],
    run_id: str,
    results: ResultsStore,
    summary: RunSummary,
    config: RunConfig,
) -> list[ModelJob]:
    """The jobs still to do under ``run_id``: replicate by replicate (a run stopped
    half-way has whole replicates first), then submission by submission, each submission's
    models in the run's serving order; counts the tasks already stored in
    ``summary.skipped`` (with ``config.retry_timeouts``, a task stored as over its
    wall-clock limit is still to do). A job's tasks run in registry order, but those that
    show the submission the model's poisoned test images last (``job_order``)."""
    jobs = []
    options = config.track_options()
    folders = {id(plan): content_hash(plan.spec.path) for plan in plans}
    key = run_key(run_id)  # drawn here, on the coordinator, and sent with every job
    for replicate in range(config.seeds):
        for plan in plans:
            spec, kinds = plan.spec, job_order(tasks_for(plan.spec.tracks, plan.tracks))
            chosen = [m for m in models if plan.model_ids is None or m.id in set(plan.model_ids)]
            for m in serving_order(run_id, chosen, key):
                todo = tuple(
                    k.name
                    for k in kinds
                    if not results.done(
                        run_id,
                        spec.name,
                        spec.content_hash,
                        m.id,
                        m.hash,
                        k.name,
                        replicate,
                        retry_timeouts=config.retry_timeouts,
                    )
                )
                summary.skipped += len(kinds) - len(todo)
                if todo:
                    jobs.append(
                        ModelJob(
                            run_id,
                            spec,
                            m,
                            todo,
                            options,
                            config.limits,
                            config.backend,
                            folders[id(plan)],
                            replicate=replicate,
                            run_key=key,
                        )
                    )
    return jobs


def job_order(kinds: list[TrackKind]) -> list[TrackKind]:
    """The order of one job's tasks: the registry's, but the tasks that show the submission
    the model's poisoned test images (filter, repair) after every other. The tasks of one
    job share a worker and an instance, so a fuzz task after a filter task could hand back
    the filter's poisoned inputs as its own (activation rate near 1); before it, it has
    never seen them."""
    return sorted(kinds, key=lambda k: k.shows_poisoned_inputs)


def execute(
    jobs: list[ModelJob],
    executor: Executor,
    results: ResultsStore,
    summary: RunSummary,
    progress: RunProgress | None = None,
) -> None:
    """Run the jobs; store each task of a job as it comes back. A job whose worker lacks
    the model or the submission (a cluster worker sharing no disk) goes again with them."""
    pending = jobs
    while pending:
        again = []
        for job, res in executor.map_unordered(run_job, pending):
            if res.missing:
                again.append(job.with_files(res.missing))
                continue
            for name, task in res.tasks:
                task = store_task(results, job, name, task, res.isolation)
                summary.done += 1
                summary.failed += task.status != "ok"
                if progress:
                    label = job.model.id + (f" (seed {job.replicate})" if job.replicate else "")
                    progress.task_done(job.spec.name, label, name, task)
        pending = again


def task_record(job: ModelJob, name: str, task: TaskResult, isolation: str) -> TaskRecord:
    """The store's row of one task of ``job``."""
    return TaskRecord(
        run_id=job.run_id,
        submission=job.spec.name,
        submission_hash=job.spec.content_hash,
        oracle=job.spec.oracle,
        model_id=job.model.id,
        model_hash=job.model.hash,
        track=name,
        status=task.status,
        outputs=task.outputs,
        scores=task.scores,
        error=task.error,
        stderr_tail=task.stderr,
        seconds=task.seconds,
        isolation=isolation,
        facts=model_facts(job.model),
        budget=job.wall_seconds,
        replicate=job.replicate,
        failure=task.failure,
    )


def store_task(
    results: ResultsStore, job: ModelJob, name: str, task: TaskResult, isolation: str
) -> TaskResult:
    """Store one task; the task as stored. A task whose outputs the store cannot write
    (``UnstorableTask``: what the submission returned defeats the JSON encoder) is stored
    as that task's invalid output with the reason, never an error that stops the run (and
    every other submission's tasks with it)."""
    try:
        results.write_task(task_record(job, name, task, isolation))
        return task
    except UnstorableTask as exc:
        failed = TaskResult(
            "failed",
            scores=by_name(name).failed(job.model).to_json(),
            error=f"invalid output: {exc}",
            stderr=task.stderr,
            seconds=task.seconds,
            failure=FailureKind.INVALID_OUTPUT,
        )
        results.write_task(task_record(job, name, failed, isolation))
        return failed


def storable(text: str | None) -> str | None:
    """A worker's text as the store can keep it: a lone surrogate (a JSON reply may hold
    "\\ud800") is no UTF-8, and SQLite would refuse the task, and the run with it."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


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
