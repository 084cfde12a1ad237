"""How the conformance checks get their inputs (harness.conformance.wiring): by name, from
the suite and from the checks before them. Unit tests on the real check table and on a
fabricated suite: no sandbox, no zoo (tests/test_conformance.py runs the checks)."""

from __future__ import annotations

import pytest

from harness.conformance import CHECKS


# -- how the checks get their inputs (no sandbox) ---------------------------------------------
def test_every_check_gets_each_input_from_the_suite_or_a_check_before_it():
    from harness.conformance.wiring import wiring_problems

    checks = list(CHECKS.values())
    assert wiring_problems(checks) == []
    manifest, declares = CHECKS["check_manifest"], CHECKS["check_declares_a_track"]
    assert wiring_problems([declares, manifest, *checks[2:]]) == [
        "check_declares_a_track needs spec: not an input, nor given before it"
    ]
    assert wiring_problems([manifest, *checks[2:]]) == [
        "check_outputs_valid runs per track, after no check that gives kinds"
    ]
    assert wiring_problems([*checks, manifest]) == [
        "check_manifest runs once but comes after a per-track check",
        "check_manifest gives spec, already given",
    ]


def _fake_suite():
    """Checks that record what they were given: a product, a non-stopping failure with its
    own fix, the kinds, and per-track checks (one fails and stops its track)."""
    from harness.conformance.wiring import Check, Verdict
    from harness.tracks import KINDS

    seen: list[tuple[str, object]] = []

    def first(path):
        seen.append(("first", path))
        return Verdict(True, "not reported", gives={"spec": f"spec of {path}"})

    def lenient(spec):
        seen.append(("lenient", spec))
        return Verdict(False, "no luck", "its own fix")

    def not_here():
        return None

    def kinds(spec):
        return Verdict(True, gives={"kinds": KINDS[:2]})

    def per_track(kind, spec):
        seen.append((kind.name, spec))
        return Verdict(kind.name != "filter", f"{kind.name} failed", gives={"results": kind.name})

    def after(results):
        seen.append(("after", results))
        return Verdict(True)

    checks = [
        Check("first", "first", "fix 1", first, gives=("spec",)),
        Check("lenient", "lenient", "fix 2", lenient, stops=False),
        Check("not_here", "not here", "fix 3", not_here),
        Check("kinds", "kinds", "fix 4", kinds, gives=("kinds",)),
        Check(
            "per_track",
            "{track}: per track",
            "fix 5",
            per_track,
            gives=("results",),
            per_track=True,
        ),
        Check("after", "{track}: after", "fix 6", after, per_track=True),
    ]
    return checks, seen


def test_the_suite_passes_products_on_and_runs_per_track_checks_once_per_kind():
    from harness.conformance.wiring import run_checks, wiring_problems

    checks, seen = _fake_suite()
    assert wiring_problems(checks, inputs=["path"]) == []
    reported = []
    names = {c.name for c in checks}
    results = run_checks(checks, {"path": "p"}, names, reported.append)
    assert results == reported
    assert [(r.name, r.passed, r.message, r.fix, r.check) for r in results] == [
        ("first", True, "", "", "first"),
        ("lenient", False, "no luck", "its own fix", "lenient"),  # stops=False: the rest run
        ("kinds", True, "", "", "kinds"),  # not_here does not apply: not reported
        ("detect: per track", True, "", "", "per_track"),
        ("detect: after", True, "", "", "after"),
        ("filter: per track", False, "filter failed", "fix 5", "per_track"),  # stops its track
    ]
    assert seen == [
        ("first", "p"),
        ("lenient", "spec of p"),
        ("detect", "spec of p"),
        ("after", "detect"),
        ("filter", "spec of p"),
    ]
    # Only the chosen checks are reported; the others still run.
    seen.clear()
    assert [r.name for r in run_checks(checks, {"path": "p"}, {"after"})] == ["detect: after"]
    assert ("first", "p") in seen


def test_a_failed_check_that_stops_ends_the_run_and_a_check_must_give_what_it_declares():
    from harness.conformance.wiring import Check, Verdict, run_checks

    checks, seen = _fake_suite()

    def fails():
        return Verdict(False, "broken")

    failing = [checks[0], Check("fails", "fails", "fix", fails), *checks[1:]]
    stopped = run_checks(failing, {"path": "p"}, {"fails", "lenient"})
    assert [(r.check, r.message, r.fix) for r in stopped] == [("fails", "broken", "fix")]
    assert seen == [("first", "p")]
    # A check that passes without a product it declares, or gives one it does not declare,
    # is a wiring mistake of the suite's, not a failure of the submission.
    silent = Check("first", "", "", lambda path: Verdict(True), gives=("spec",))
    talkative = Check("first", "", "", lambda path: Verdict(True, gives={"spec": 1}))
    for check in (silent, talkative):
        with pytest.raises(RuntimeError, match="first gave"):
            run_checks([check], {"path": "p"}, {"first"})
