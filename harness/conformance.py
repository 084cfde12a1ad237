"""`harness submission check`: a conformance suite on a two-model toy zoo.

Like scikit-learn's check_estimator: many small checks, each testing one property of the
contract and saying how to fix a failure. Submission code runs only in the sandbox.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SpecError
from harness.runner import SubmissionRunner, TaskResult
from harness.sandbox.client import WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, load_submission
from harness.tracks import KINDS, TrackKind, required_methods, tasks_for
from harness.zoo.store import ZooModel

CHECK_PROFILE = "toy"


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str = ""
    fix: str = ""


Report = Callable[[CheckResult], None]


class _Suite:
    def __init__(self, report: Report | None) -> None:
        self.results: list[CheckResult] = []
        self.report = report

    def add(self, name: str, passed: bool, message: str = "", fix: str = "") -> bool:
        result = CheckResult(name, passed, message, fix)
        self.results.append(result)
        if self.report:
            self.report(result)
        return passed


def _start(suite: _Suite, runner: SubmissionRunner, spec: SubmissionSpec) -> bool:
    try:
        reply = runner.worker.start()
    except WorkerFailure as exc:
        return suite.add(
            "worker starts",
            False,
            f"{exc.reason}; stderr: {exc.stderr[-500:]}",
            "make the module importable with only numpy, tensorflow and keras",
        )
    kind = reply.get("kind")
    if not suite.add(
        "entry resolves",
        reply.get("ok") or kind != "entry",
        reply.get("error", ""),
        f"define the class named by entry = {spec.entry!r}",
    ):
        return False
    if not suite.add(
        "params match the constructor",
        reply.get("ok") or kind != "params",
        reply.get("error", ""),
        "make [params] keys keyword arguments of __init__",
    ):
        return False
    if not reply.get("ok"):
        return suite.add("worker starts", False, reply.get("error", ""), "see the message")
    missing = sorted(required_methods(spec.tracks) - set(reply.get("methods", [])))
    return suite.add(
        "track methods exist",
        not missing,
        f"missing method(s) {', '.join(missing)}",
        "implement them or drop the track from tracks = [...]",
    )


def _same(a: TaskResult, b: TaskResult, kind: TrackKind) -> bool:
    where, keys = kind.same_seed.where, kind.same_seed.keys
    return [getattr(a, where).get(k) for k in keys] == [getattr(b, where).get(k) for k in keys]


def _track_checks(
    suite: _Suite, runner: SubmissionRunner, models: list[ZooModel], kind: TrackKind
) -> None:
    track = kind.name
    results = [runner.run("check", m, kind) for m in models]
    bad = [(m.id, r) for m, r in zip(models, results, strict=True) if r.status != "ok"]
    msg = "; ".join(f"{mid}: {r.error}" for mid, r in bad)
    if not suite.add(
        f"{track}: outputs valid on every model",
        not bad,
        msg,
        "return what harness/api.py documents for this track (types, ranges, no NaN)",
    ):
        return
    over = [r.seconds for r in results if (r.seconds or 0) > runner.limits.wall_seconds]
    suite.add(
        f"{track}: time budget kept",
        not over,
        f"took {over} s",
        "speed up or raise resources.wall_seconds_per_model",
    )
    if kind.keeps_weights:
        changed = any(r.outputs.get("weights_changed") for r in results)
        suite.add(
            f"{track}: input model's weights unchanged",
            not changed,
            "the submission modified the model it was given",
            "work on a copy: keras.models.clone_model(model) + set_weights",
        )
    again = runner.run("check", models[0], kind)
    suite.add(
        f"{track}: same seed, same result",
        again.status == "ok" and _same(results[0], again, kind),
        "two runs with the same seed differ",
        "draw randomness from keras/numpy/tf seeded generators, not time or os.urandom",
    )


def check_submission(
    path: Path,
    models: list[ZooModel],
    *,
    backend: str = "auto",
    limits: SandboxLimits | None = None,
    report: Report | None = None,
) -> list[CheckResult]:
    """Run every check; stop early only where later checks cannot run."""
    suite = _Suite(report)
    try:
        spec = load_submission(path)
    except SpecError as exc:
        suite.add("submission.toml valid", False, exc.problem, exc.fix)
        return suite.results
    suite.add("submission.toml valid", True)
    kinds = tasks_for(spec.tracks, spec.tracks)
    if not suite.add(
        "declares a runnable track",
        bool(kinds),
        f"tracks {spec.tracks}",
        f"declare at least one of {', '.join(repr(k.name) for k in KINDS)}",
    ):
        return suite.results
    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
        runner = SubmissionRunner(spec, backend, limits or SandboxLimits(), Path(tmp))
        try:
            if _start(suite, runner, spec):
                for kind in kinds:
                    _track_checks(suite, runner, models, kind)
        finally:
            runner.close()
    return suite.results
