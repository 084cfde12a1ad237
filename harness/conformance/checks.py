"""The conformance checks of `harness submission check`, one function each.

Each ``check_*`` tests one property of the contract. Its parameters name what it needs
(the suite's inputs, such as ``path`` or ``models``, the ``kind`` a per-track check runs
for, or a product of a check before it, such as the ``spec`` that ``check_manifest``
gives); it returns ``None`` (does not apply) or a ``Verdict``: whether it passed, why not,
optionally a fix of its own, and the products it gives the checks after it
(``harness.conformance.wiring`` says how they are passed). ``harness.conformance.suite``
lists them in the order they run, with what each gives, and runs them. Submission code runs
only in the sandbox.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness.api import Track
from harness.conformance.wiring import Verdict
from harness.errors import SpecError
from harness.execution.task import SubmissionRunner, TaskResult
from harness.sandbox.client import WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, load_submission
from harness.tracks import PRODUCERS, TrackKind, required_methods, tasks_for
from harness.zoo.store import ZooModel

CHECK_PROFILE = "toy"


def check_manifest(path: Path) -> Verdict:
    """Gives ``spec``: the submission's manifest."""
    try:
        spec = load_submission(path)
    except SpecError as exc:
        return Verdict(False, exc.problem, exc.fix or "see docs/SUBMITTING.md")
    return Verdict(True, gives={"spec": spec})


def check_declares_a_track(spec: SubmissionSpec) -> Verdict:
    """Gives ``kinds``: the track kinds the submission's tasks run (the per-track checks
    run once for each)."""
    kinds = tasks_for(spec.tracks, spec.tracks)
    runnable = kinds or set(spec.tracks) & set(PRODUCERS)
    said = f"tracks {[t.value for t in spec.tracks]}"
    return Verdict(bool(runnable), said, gives={"kinds": kinds})


def check_configures(
    spec: SubmissionSpec, models: list[ZooModel], backend: str, limits: SandboxLimits
) -> Verdict:
    """A learned detector's configure step, on the check's models as its labelled
    training split. Gives ``configured``: the folder it wrote, which the check's tasks then
    see (None: the submission has no configure step)."""
    if not spec.configure:
        return Verdict(True, gives={"configured": None})
    from harness.execution.configure import configure_on

    done = configure_on(spec, models, "conformance", backend, limits)
    if done.error:
        return Verdict(False, done.error)
    return Verdict(True, gives={"configured": done.folder})


#: The conformance runner's wall clock, as a multiple of the submission's budget: a task
#: that overruns its budget is measured (and reported by check_time_budget) instead of
#: being killed at the budget.
OVERRUN = 2.0


def new_runner(
    spec: SubmissionSpec,
    configured: Path | None,
    backend: str,
    limits: SandboxLimits,
    workdir: Path,
) -> TimedRunner:
    """A runner of the submission for the checks, in ``workdir`` (made here): a fresh
    worker (its own process, emptied scratch and /tmp) that sees the ``configured`` folder,
    if any, and whose wall clock is ``OVERRUN`` times the submission's budget."""
    shared = (("configured", configured),) if configured else ()
    wall = OVERRUN * budget_seconds(spec, limits)
    res = dataclasses.replace(spec.resources, wall_seconds_per_model=wall)
    spec = dataclasses.replace(spec, resources=res)
    workdir.mkdir(parents=True, exist_ok=True)
    limits = dataclasses.replace(limits, wall_seconds=wall)
    return TimedRunner(spec, backend, limits, workdir, shared=shared)


def budget_seconds(spec: SubmissionSpec, limits: SandboxLimits) -> float:
    """The submission's wall-clock budget per task (its request, under the harness's cap)."""
    return limits.capped(spec.resources.wall_seconds_per_model, None).wall_seconds


def check_worker_starts(
    spec: SubmissionSpec,
    configured: Path | None,
    backend: str,
    limits: SandboxLimits,
    workdir: Path,
    closing: ExitStack,
) -> Verdict:
    """Gives ``runner`` (the worker the per-track checks' tasks run in: ``closing`` closes
    it when the checks end) and ``reply`` (the worker's answer to its start: whether the
    entry class resolved and took its params, what the constructor set, its methods)."""
    runner = new_runner(spec, configured, backend, limits, workdir / "worker")
    closing.callback(runner.close)
    try:
        reply = runner.worker.start()
    except WorkerFailure as exc:
        return Verdict(False, f"{exc.reason}; stderr: {exc.stderr[-500:]}")
    passed = bool(reply.get("ok")) or reply.get("kind") in ("entry", "params")
    said = "" if passed else str(reply.get("error", ""))
    return Verdict(passed, said, gives={"runner": runner, "reply": reply})


def _start_failure(reply: dict[str, Any], kind: str) -> Verdict:
    failed = not reply.get("ok") and reply.get("kind") == kind
    return Verdict(not failed, str(reply.get("error", "")) if failed else "")


def check_entry_resolves(reply: dict[str, Any]) -> Verdict:
    return _start_failure(reply, "entry")


def check_params_bind(reply: dict[str, Any]) -> Verdict:
    return _start_failure(reply, "params")


def check_constructor_stores_params(reply: dict[str, Any]) -> Verdict:
    found = reply.get("constructor") or {}
    extra, not_stored = found.get("extra", []), found.get("not_stored", [])
    said = []
    if extra:
        said.append(f"__init__ also sets {', '.join(extra)}")
    if not_stored:
        said.append(f"__init__ does not store {', '.join(not_stored)} unchanged")
    return Verdict(not said, "; ".join(said))


def check_methods_exist(spec: SubmissionSpec, reply: dict[str, Any]) -> Verdict:
    missing = sorted(required_methods(spec.tracks) - set(reply.get("methods", [])))
    return Verdict(not missing, f"missing method(s) {', '.join(missing)}")


def check_poisons(spec: SubmissionSpec, backend: str, limits: SandboxLimits) -> Verdict | None:
    """An attack hand-in's poison() on a small MNIST training split (the attack track's
    `tiny` recipe), its poisoned set read as the track reads it."""
    if Track.ATTACK not in spec.tracks:
        return None
    from harness.attack_track.instance import poison_in_sandbox
    from harness.attack_track.recipe import TRAIN_RECIPES
    from harness.data import load_dataset
    from harness.zoo.training import make_splits

    recipe = TRAIN_RECIPES["tiny"]
    data = load_dataset(recipe.dataset)
    entry = recipe.entry(spec.name, 0)
    got = poison_in_sandbox(spec, make_splits(data, entry), data, entry.seed, backend, limits)
    return Verdict(got.hand_in is not None, f"{got.status}: {got.error}")


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


def check_outputs_valid(runner: TimedRunner, kind: TrackKind, models: list[ZooModel]) -> Verdict:
    """Each model's task in the started worker. Gives ``results`` (one per model) and
    ``seconds`` (each one's wall time as the harness measured it, never the worker's
    word)."""
    timed = [timed_run(runner, m, kind) for m in models]
    results, seconds = [r for r, _ in timed], [t for _, t in timed]
    bad = [(m.id, r) for m, r in zip(models, results, strict=True) if r.status != "ok"]
    said = "; ".join(f"{mid}: {r.error}" for mid, r in bad)
    return Verdict(not bad, said, gives={"results": results, "seconds": seconds})


def check_time_budget(
    spec: SubmissionSpec, limits: SandboxLimits, models: list[ZooModel], seconds: list[float]
) -> Verdict:
    """Each task's wall time as the harness measured it (staging the model, the call and
    the reply) against the submission's budget."""
    budget = budget_seconds(spec, limits)
    over = [(m.id, took) for m, took in zip(models, seconds, strict=True) if took > budget]
    said = [f"{mid} took {took:.1f} s (timed by the harness)" for mid, took in over]
    return Verdict(not over, f"{'; '.join(said)}; the budget is {budget:g} s")


def check_weights_unchanged(kind: TrackKind, results: list[TaskResult]) -> Verdict | None:
    if not kind.keeps_weights:
        return None
    changed = any(r.outputs.get("weights_changed") for r in results)
    return Verdict(not changed, "the submission modified the model it was given")


def check_same_seed(
    spec: SubmissionSpec,
    configured: Path | None,
    backend: str,
    limits: SandboxLimits,
    workdir: Path,
    models: list[ZooModel],
    kind: TrackKind,
    results: list[TaskResult],
) -> Verdict:
    """The first model's task again with the same seed, in a fresh worker: a new process
    with emptied scratch and /tmp, so an answer cached in the submission's module, its
    instance or its files cannot stand in for a deterministic one."""
    fresh = new_runner(spec, configured, backend, limits, workdir / f"again-{kind.name}")
    try:
        again = fresh.run("check", models[0], kind)
    finally:
        fresh.close()
    where, keys = kind.same_seed.where, kind.same_seed.keys
    first = [getattr(results[0], where).get(k) for k in keys]
    second = [getattr(again, where).get(k) for k in keys]
    if again.status != "ok":
        return Verdict(False, f"the run again (a fresh worker) failed: {again.error}")
    differ = [
        f"{k} {a!r} then {b!r}" for k, a, b in zip(keys, first, second, strict=True) if a != b
    ]
    return Verdict(not differ, f"two runs with the same seed differ: {'; '.join(differ)}")
