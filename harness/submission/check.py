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
from harness.runner import SubmissionRunner, TaskResult, task_tracks
from harness.sandbox.client import WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, load_submission, required_methods
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


#: What must repeat exactly when a task is run twice with the same seed.
SAME_SEED_KEYS = {
    "detect": ("outputs", ("score", "target_labels")),
    "repair": ("scores", ("ca", "asr", "dtr_clean")),
    "filter": ("scores", ("filter_auc", "filter_frr", "far_at_1frr")),
    "fuzz": ("scores", ("n_generated", "activation_rate")),
}


def _same(a: TaskResult, b: TaskResult, track: str) -> bool:
    where, keys = SAME_SEED_KEYS[track]
    return [getattr(a, where).get(k) for k in keys] == [getattr(b, where).get(k) for k in keys]


def _track_checks(
    suite: _Suite, runner: SubmissionRunner, models: list[ZooModel], track: str
) -> None:
    results = [runner.run("check", m, track) for m in models]
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
    if track != "repair":
        changed = any(r.outputs.get("weights_changed") for r in results)
        suite.add(
            f"{track}: input model's weights unchanged",
            not changed,
            "the submission modified the model it was given",
            "work on a copy: keras.models.clone_model(model) + set_weights",
        )
    again = runner.run("check", models[0], track)
    suite.add(
        f"{track}: same seed, same result",
        again.status == "ok" and _same(results[0], again, track),
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
    tracks = task_tracks(spec, list(spec.tracks))
    if not suite.add(
        "declares a runnable track",
        bool(tracks),
        f"tracks {spec.tracks}",
        'declare at least one of "detect", "filter", "repair", "fuzz"',
    ):
        return suite.results
    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
        runner = SubmissionRunner(spec, backend, limits or SandboxLimits(), Path(tmp))
        try:
            if _start(suite, runner, spec):
                for track in tracks:
                    _track_checks(suite, runner, models, track)
        finally:
            runner.close()
    return suite.results
