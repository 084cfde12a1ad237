"""The conformance checks of `harness submission check`, one function each.

Each ``check_*`` tests one property of the contract on a ``Context`` (what the checks
share while they run on one submission) and returns ``None`` (does not apply), or whether
it passed, why not, and optionally a fix of its own. ``harness.conformance.suite`` lists
them in the order they run and runs them. Submission code runs only in the sandbox.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.api import Track
from harness.errors import SpecError
from harness.execution.task import SubmissionRunner, TaskResult
from harness.sandbox.client import WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, load_submission
from harness.tracks import PRODUCERS, TrackKind, required_methods, tasks_for
from harness.zoo.store import ZooModel

CHECK_PROFILE = "toy"


@dataclass(frozen=True)
class CheckResult:
    name: str  # what was checked, as printed ("detect: outputs valid on every model")
    passed: bool
    message: str = ""
    fix: str = ""
    check: str = ""  # the check's name in CHECKS ("check_outputs_valid")


Report = Callable[[CheckResult], None]


@dataclass
class Context:
    """What the checks share while they run on one submission."""

    path: Path
    models: list[ZooModel]
    backend: str
    limits: SandboxLimits
    workdir: Path
    spec: SubmissionSpec | None = None
    runner: TimedRunner | None = None
    reply: dict[str, Any] = field(default_factory=dict)
    kind: TrackKind | None = None
    results: list[TaskResult] = field(default_factory=list)
    #: each of ``results``' wall time as the harness measured it (never the worker's word)
    seconds: list[float] = field(default_factory=list)
    configured: Path | None = None  # a learned detector's configure output


#: (passed, message) or (passed, message, a fix that replaces the check's own); None: the
#: check does not apply here (not reported).
Verdict = tuple[bool, str] | tuple[bool, str, str] | None


@dataclass(frozen=True)
class Check:
    name: str
    title: str  # printed; "{track}" is the track's name for per-track checks
    fix: str
    run: Callable[[Context], Verdict]
    per_track: bool = False
    stops: bool = True  # a failure stops the checks after it (they could not run)


def check_manifest(ctx: Context) -> Verdict:
    try:
        ctx.spec = load_submission(ctx.path)
    except SpecError as exc:
        return False, exc.problem, exc.fix or "see docs/SUBMITTING.md"
    return True, ""


def check_declares_a_track(ctx: Context) -> Verdict:
    assert ctx.spec is not None
    runnable = tasks_for(ctx.spec.tracks, ctx.spec.tracks) or set(ctx.spec.tracks) & set(PRODUCERS)
    return bool(runnable), f"tracks {[t.value for t in ctx.spec.tracks]}"


def check_configures(ctx: Context) -> Verdict:
    """A learned detector's configure step, on the check's models as its labelled
    training split (the check's tasks then see what it wrote)."""
    assert ctx.spec is not None
    if not ctx.spec.configure:
        return True, ""
    from harness.execution.configure import configure_on

    done = configure_on(ctx.spec, ctx.models, "conformance", ctx.backend, ctx.limits)
    if done.error:
        return False, done.error
    ctx.configured = done.folder
    return True, ""


#: The conformance runner's wall clock, as a multiple of the submission's budget: a task
#: that overruns its budget is measured (and reported by check_time_budget) instead of
#: being killed at the budget.
OVERRUN = 2.0


def new_runner(ctx: Context, folder: str) -> TimedRunner:
    """A runner of the submission for the checks, in ``ctx.workdir / folder``: a fresh
    worker (its own process, emptied scratch and /tmp) whose wall clock is ``OVERRUN``
    times the submission's budget."""
    assert ctx.spec is not None
    shared = (("configured", ctx.configured),) if ctx.configured else ()
    wall = OVERRUN * budget_seconds(ctx)
    res = dataclasses.replace(ctx.spec.resources, wall_seconds_per_model=wall)
    spec = dataclasses.replace(ctx.spec, resources=res)
    workdir = ctx.workdir / folder
    workdir.mkdir(parents=True, exist_ok=True)
    limits = dataclasses.replace(ctx.limits, wall_seconds=wall)
    return TimedRunner(spec, ctx.backend, limits, workdir, shared=shared)


def budget_seconds(ctx: Context) -> float:
    """The submission's wall-clock budget per task (its request, under the harness's cap)."""
    assert ctx.spec is not None
    return ctx.limits.capped(ctx.spec.resources.wall_seconds_per_model, None).wall_seconds


def check_worker_starts(ctx: Context) -> Verdict:
    assert ctx.spec is not None
    ctx.runner = new_runner(ctx, "worker")
    try:
        ctx.reply = ctx.runner.worker.start()
    except WorkerFailure as exc:
        return False, f"{exc.reason}; stderr: {exc.stderr[-500:]}"
    if ctx.reply.get("ok") or ctx.reply.get("kind") in ("entry", "params"):
        return True, ""
    return False, str(ctx.reply.get("error", ""))


def _start_failure(ctx: Context, kind: str) -> Verdict:
    failed = not ctx.reply.get("ok") and ctx.reply.get("kind") == kind
    return not failed, str(ctx.reply.get("error", "")) if failed else ""


def check_entry_resolves(ctx: Context) -> Verdict:
    return _start_failure(ctx, "entry")


def check_params_bind(ctx: Context) -> Verdict:
    return _start_failure(ctx, "params")


def check_constructor_stores_params(ctx: Context) -> Verdict:
    found = ctx.reply.get("constructor") or {}
    extra, not_stored = found.get("extra", []), found.get("not_stored", [])
    said = []
    if extra:
        said.append(f"__init__ also sets {', '.join(extra)}")
    if not_stored:
        said.append(f"__init__ does not store {', '.join(not_stored)} unchanged")
    return not said, "; ".join(said)


def check_methods_exist(ctx: Context) -> Verdict:
    assert ctx.spec is not None
    missing = sorted(required_methods(ctx.spec.tracks) - set(ctx.reply.get("methods", [])))
    return not missing, f"missing method(s) {', '.join(missing)}"


def check_poisons(ctx: Context) -> Verdict:
    """An attack hand-in's poison() on a small MNIST training split (the attack track's
    `tiny` recipe), its poisoned set read as the track reads it."""
    assert ctx.spec is not None
    if Track.ATTACK not in ctx.spec.tracks:
        return None
    from harness.attack_track.instance import poison_in_sandbox
    from harness.attack_track.recipe import TRAIN_RECIPES
    from harness.data import load_dataset
    from harness.zoo.training import make_splits

    recipe = TRAIN_RECIPES["tiny"]
    data = load_dataset(recipe.dataset)
    entry = recipe.entry(ctx.spec.name, 0)
    got = poison_in_sandbox(ctx.spec, make_splits(data, entry), data, entry.seed, ctx.backend,
                            ctx.limits)  # fmt: skip
    return got.hand_in is not None, f"{got.status}: {got.error}"


class TimedRunner(SubmissionRunner):
    """A runner that measures each worker call on the harness's side: staging the model,
    the call and the reply, not the worker's start nor the harness's own scoring. (The
    seconds a worker reports come from inside the sandbox: a submission can make them
    anything.)"""

    last_seconds: float = 0.0

    def request(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], Path]:
        self._ensure()
        start = time.monotonic()
        try:
            return super().request(*args, **kwargs)
        finally:
            self.last_seconds = time.monotonic() - start


def timed_run(runner: TimedRunner, model: ZooModel, kind: TrackKind) -> tuple[TaskResult, float]:
    """One check task and its wall time as the harness measured it."""
    runner.last_seconds = 0.0
    result = runner.run("check", model, kind)
    return result, runner.last_seconds


def check_outputs_valid(ctx: Context) -> Verdict:
    assert ctx.runner is not None and ctx.kind is not None
    kind, runner = ctx.kind, ctx.runner
    timed = [timed_run(runner, m, kind) for m in ctx.models]
    ctx.results, ctx.seconds = [r for r, _ in timed], [t for _, t in timed]
    bad = [(m.id, r) for m, r in zip(ctx.models, ctx.results, strict=True) if r.status != "ok"]
    return not bad, "; ".join(f"{mid}: {r.error}" for mid, r in bad)


def check_time_budget(ctx: Context) -> Verdict:
    """Each task's wall time as the harness measured it (staging the model, the call and
    the reply) against the submission's budget."""
    budget = budget_seconds(ctx)
    over = [(m.id, took) for m, took in zip(ctx.models, ctx.seconds, strict=True) if took > budget]
    said = [f"{mid} took {took:.1f} s (timed by the harness)" for mid, took in over]
    return not over, f"{'; '.join(said)}; the budget is {budget:g} s"


def check_weights_unchanged(ctx: Context) -> Verdict:
    assert ctx.kind is not None
    if not ctx.kind.keeps_weights:
        return None
    changed = any(r.outputs.get("weights_changed") for r in ctx.results)
    return not changed, "the submission modified the model it was given"


def check_same_seed(ctx: Context) -> Verdict:
    """The first model's task again with the same seed, in a fresh worker: a new process
    with emptied scratch and /tmp, so an answer cached in the submission's module, its
    instance or its files cannot stand in for a deterministic one."""
    assert ctx.kind is not None
    fresh = new_runner(ctx, f"again-{ctx.kind.name}")
    try:
        again = fresh.run("check", ctx.models[0], ctx.kind)
    finally:
        fresh.close()
    where, keys = ctx.kind.same_seed.where, ctx.kind.same_seed.keys
    first = [getattr(ctx.results[0], where).get(k) for k in keys]
    second = [getattr(again, where).get(k) for k in keys]
    if again.status != "ok":
        return False, f"the run again (a fresh worker) failed: {again.error}"
    differ = [
        f"{k} {a!r} then {b!r}" for k, a, b in zip(keys, first, second, strict=True) if a != b
    ]
    return not differ, f"two runs with the same seed differ: {'; '.join(differ)}"
