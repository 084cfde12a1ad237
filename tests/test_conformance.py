"""The conformance suite's pytest adapter: each check of `harness submission check` as a test
on every reference submission. `make test` runs the checks that need no task (the manifest,
the worker start, the constructor, the methods); `make test-slow` runs all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.conformance import CHECKS, check_submission

REPO = Path(__file__).resolve().parents[1]
REFERENCE = sorted(
    p.name for p in (REPO / "submissions").iterdir() if (p / "submission.toml").is_file()
)
STARTUP = tuple(c.name for c in CHECKS if not c.per_track)


@pytest.fixture(scope="module")
def startup_results(backend):
    """Each reference submission through the startup checks once (one sandbox worker each)."""
    return {
        name: {
            r.check: r
            for r in check_submission(
                REPO / "submissions" / name, [], backend=backend, only=STARTUP
            )
        }
        for name in REFERENCE
    }


@pytest.mark.parametrize("check", STARTUP)
@pytest.mark.parametrize("submission", REFERENCE)
def test_reference_submission_passes(startup_results, submission, check):
    result = startup_results[submission].get(check)
    assert result is not None, f"{check} did not run on {submission}"
    assert result.passed, f"{result.name}: {result.message} (fix: {result.fix})"


@pytest.mark.slow
@pytest.mark.parametrize("submission", REFERENCE)
def test_reference_submission_passes_every_check(submission, backend):
    from harness.conformance import CHECK_PROFILE
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    models = build_profile(load_profile(CHECK_PROFILE))
    results = check_submission(REPO / "submissions" / submission, models, backend=backend)
    failed = [f"{r.name}: {r.message}" for r in results if not r.passed]
    assert results and not failed, failed


def test_selecting_a_check_reports_only_it_and_an_unknown_one_is_refused(backend):
    results = check_submission(
        REPO / "tests" / "submissions" / "ctor_state",
        [],
        backend=backend,
        only=["check_constructor_stores_params"],
    )
    (result,) = results
    assert result.check == "check_constructor_stores_params" and not result.passed
    assert "also sets history" in result.message and "does not store scale" in result.message
    assert "steps" not in result.message and result.fix
    with pytest.raises(ValueError, match="unknown check"):
        check_submission(REPO / "submissions" / "null", [], only=["check_nothing"])
