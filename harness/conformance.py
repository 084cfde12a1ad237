"""`harness submission check`: the conformance suite, as named checks.

Like scikit-learn's ``check_estimator``: each ``check_*`` below tests one property of the
contract and says how to fix a failure; ``CHECKS`` lists them in the order they run, and
``check_submission(..., only=[...])`` runs a selection (the checks a selected one needs
still run first, unreported). The per-track checks run once for every task the submission
declares, on a two-model toy zoo. Submission code runs only in the sandbox.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.api import Track
from harness.errors import SpecError
from harness.sandbox.client import WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, load_submission
from harness.task import SubmissionRunner, TaskResult
from harness.tracks import KINDS, PRODUCERS, TrackKind, required_methods, tasks_for
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
Outcome = tuple[bool, str] | tuple[bool, str, str] | None


@dataclass(frozen=True)
class Check:
    name: str
    title: str  # printed; "{track}" is the track's name for per-track checks
    fix: str
    run: Callable[[Context], Outcome]
    per_track: bool = False
    stops: bool = True  # a failure stops the checks after it (they could not run)


def check_manifest(ctx: Context) -> Outcome:
    try:
        ctx.spec = load_submission(ctx.path)
    except SpecError as exc:
        return False, exc.problem, exc.fix or "see docs/SUBMITTING.md"
    return True, ""


def check_declares_a_track(ctx: Context) -> Outcome:
    assert ctx.spec is not None
    runnable = tasks_for(ctx.spec.tracks, ctx.spec.tracks) or set(ctx.spec.tracks) & set(PRODUCERS)
    return bool(runnable), f"tracks {[t.value for t in ctx.spec.tracks]}"


def check_configures(ctx: Context) -> Outcome:
    """A learned detector's configure step, on the check's models as its labelled
    training split (the check's tasks then see what it wrote)."""
    assert ctx.spec is not None
    if not ctx.spec.configure:
        return True, ""
    from harness.configure import configure_on

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


def check_worker_starts(ctx: Context) -> Outcome:
    assert ctx.spec is not None
    ctx.runner = new_runner(ctx, "worker")
    try:
        ctx.reply = ctx.runner.worker.start()
    except WorkerFailure as exc:
        return False, f"{exc.reason}; stderr: {exc.stderr[-500:]}"
    if ctx.reply.get("ok") or ctx.reply.get("kind") in ("entry", "params"):
        return True, ""
    return False, str(ctx.reply.get("error", ""))


def _start_failure(ctx: Context, kind: str) -> Outcome:
    failed = not ctx.reply.get("ok") and ctx.reply.get("kind") == kind
    return not failed, str(ctx.reply.get("error", "")) if failed else ""


def check_entry_resolves(ctx: Context) -> Outcome:
    return _start_failure(ctx, "entry")


def check_params_bind(ctx: Context) -> Outcome:
    return _start_failure(ctx, "params")


def check_constructor_stores_params(ctx: Context) -> Outcome:
    found = ctx.reply.get("constructor") or {}
    extra, not_stored = found.get("extra", []), found.get("not_stored", [])
    said = []
    if extra:
        said.append(f"__init__ also sets {', '.join(extra)}")
    if not_stored:
        said.append(f"__init__ does not store {', '.join(not_stored)} unchanged")
    return not said, "; ".join(said)


def check_methods_exist(ctx: Context) -> Outcome:
    assert ctx.spec is not None
    missing = sorted(required_methods(ctx.spec.tracks) - set(ctx.reply.get("methods", [])))
    return not missing, f"missing method(s) {', '.join(missing)}"


def check_poisons(ctx: Context) -> Outcome:
    """An attack hand-in's poison() on a small MNIST training split (the attack track's
    `tiny` recipe), its poisoned set read as the track reads it."""
    assert ctx.spec is not None
    if Track.ATTACK not in ctx.spec.tracks:
        return None
    from harness.attack_track.instance import poison_in_sandbox
    from harness.attack_track.recipe import RECIPES
    from harness.data import load_dataset
    from harness.zoo.training import make_splits

    recipe = RECIPES["tiny"]
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


def check_outputs_valid(ctx: Context) -> Outcome:
    assert ctx.runner is not None and ctx.kind is not None
    kind, runner = ctx.kind, ctx.runner
    timed = [timed_run(runner, m, kind) for m in ctx.models]
    ctx.results, ctx.seconds = [r for r, _ in timed], [t for _, t in timed]
    bad = [(m.id, r) for m, r in zip(ctx.models, ctx.results, strict=True) if r.status != "ok"]
    return not bad, "; ".join(f"{mid}: {r.error}" for mid, r in bad)


def check_time_budget(ctx: Context) -> Outcome:
    """Each task's wall time as the harness measured it (staging the model, the call and
    the reply) against the submission's budget."""
    budget = budget_seconds(ctx)
    over = [(m.id, took) for m, took in zip(ctx.models, ctx.seconds, strict=True) if took > budget]
    said = [f"{mid} took {took:.1f} s (timed by the harness)" for mid, took in over]
    return not over, f"{'; '.join(said)}; the budget is {budget:g} s"


def check_weights_unchanged(ctx: Context) -> Outcome:
    assert ctx.kind is not None
    if not ctx.kind.keeps_weights:
        return None
    changed = any(r.outputs.get("weights_changed") for r in ctx.results)
    return not changed, "the submission modified the model it was given"


def check_same_seed(ctx: Context) -> Outcome:
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


CHECKS: tuple[Check, ...] = (
    Check(
        "check_manifest",
        "submission.toml valid",
        "see the message; docs/SUBMITTING.md lists every key",
        check_manifest,
    ),
    Check(
        "check_declares_a_track",
        "declares a runnable track",
        f"declare at least one of {', '.join(repr(n) for n in [k.name for k in KINDS] + [t.value for t in PRODUCERS])}",
        check_declares_a_track,
    ),
    Check(
        "check_configures",
        "configure step runs (learned detectors)",
        "make configure(training_dir, out_dir) finish within [resources] configure_seconds",
        check_configures,
    ),
    Check(
        "check_worker_starts",
        "worker starts",
        "make the module importable with only numpy, tensorflow and keras",
        check_worker_starts,
    ),
    Check(
        "check_entry_resolves",
        "entry resolves",
        "define the class named by entry = 'module:Class' in submission.toml",
        check_entry_resolves,
    ),
    Check(
        "check_params_bind",
        "params match the constructor",
        "make [params] keys keyword arguments of __init__, with values it accepts",
        check_params_bind,
    ),
    Check(
        "check_constructor_stores_params",
        "constructor only stores its parameters",
        "in __init__ store each parameter unchanged as self.<name> and nothing else; "
        "build state in the track methods (class attributes may give defaults)",
        check_constructor_stores_params,
        stops=False,
    ),
    Check(
        "check_methods_exist",
        "track methods exist",
        "implement them or drop the track from tracks = [...]",
        check_methods_exist,
    ),
    Check(
        "check_poisons",
        "attack: poisoned set within the track's limits",
        "return a harness.api.PoisonedSet as docs/ATTACK-TRACK.md describes (same length as "
        "the training set, in its range, within the limits on changed images and labels)",
        check_poisons,
    ),
    Check(
        "check_outputs_valid",
        "{track}: outputs valid on every model",
        "return what harness/api.py documents for this track (types, ranges, no NaN)",
        check_outputs_valid,
        per_track=True,
    ),
    Check(
        "check_time_budget",
        "{track}: time budget kept",
        "speed up or raise resources.wall_seconds_per_model",
        check_time_budget,
        per_track=True,
        stops=False,
    ),
    Check(
        "check_weights_unchanged",
        "{track}: input model's weights unchanged",
        "work on a copy: keras.models.clone_model(model) + set_weights",
        check_weights_unchanged,
        per_track=True,
        stops=False,
    ),
    Check(
        "check_same_seed",
        "{track}: same seed, same result",
        "draw randomness from keras/numpy/tf seeded generators, not time or os.urandom",
        check_same_seed,
        per_track=True,
        stops=False,
    ),
)
NAMES = tuple(c.name for c in CHECKS)


def _chosen(only: Iterable[str] | None) -> set[str]:
    chosen = set(NAMES if only is None else only)
    unknown = sorted(chosen - set(NAMES))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; choose from {', '.join(NAMES)}")
    return chosen


def check_submission(
    path: Path,
    models: list[ZooModel],
    *,
    backend: str = "auto",
    limits: SandboxLimits | None = None,
    report: Report | None = None,
    only: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run the checks (``only``: a selection of CHECKS' names) and return their results;
    a failed check whose later ones could not run stops the suite there."""
    chosen = _chosen(only)
    last = max(NAMES.index(n) for n in chosen)
    results: list[CheckResult] = []

    def run(check: Check, ctx: Context) -> bool:
        outcome = check.run(ctx)
        if outcome is None:
            return True
        passed, message = outcome[0], outcome[1]
        fix = outcome[2] if len(outcome) == 3 else check.fix
        if check.name in chosen:
            track = ctx.kind.name if ctx.kind else ""
            result = CheckResult(
                check.title.format(track=track),
                passed,
                "" if passed else message,
                "" if passed else fix,
                check.name,
            )
            results.append(result)
            if report:
                report(result)
        return passed or not check.stops

    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
        ctx = Context(path, models, backend, limits or SandboxLimits(), Path(tmp))
        try:
            for check in CHECKS[: last + 1]:
                if check.per_track:
                    break
                if not run(check, ctx):
                    return results
            per_track = [c for c in CHECKS[: last + 1] if c.per_track]
            if per_track and ctx.spec is not None:
                for kind in tasks_for(ctx.spec.tracks, ctx.spec.tracks):
                    ctx.kind, ctx.results = kind, []
                    for check in per_track:
                        if not run(check, ctx):
                            break
        finally:
            if ctx.runner is not None:
                ctx.runner.close()
    return results
