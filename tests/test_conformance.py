"""The conformance suite's pytest adapter: each check of `harness submission check` as a test
on the reference submissions.

`make test` runs the sandboxed checks that need no task (the manifest, the worker start,
the constructor, the methods) on the template submission contestants start from, and the
constructor rule in this process on every reference submission (the same report the
sandbox worker makes); `make test-slow` runs every check in the sandbox on every reference
submission."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from refsubs import entry_class

from harness.conformance import CHECKS, check_submission
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
SUBMISSIONS = REPO / "submissions"
REFERENCE = sorted(p.name for p in SUBMISSIONS.iterdir() if (p / "submission.toml").is_file())
#: The reference attack hand-ins (the attack track), under submissions/attacks/.
ATTACKS = sorted(f"attacks/{p.parent.name}" for p in SUBMISSIONS.glob("attacks/*/submission.toml"))
#: The checks before any task; check_poisons applies to attack hand-ins alone.
STARTUP = tuple(c.name for c in CHECKS.values() if not c.per_track and c.name != "check_poisons")


@pytest.fixture(scope="module")
def template_results(backend):
    """The template through the startup checks (one sandbox worker)."""
    results = check_submission(SUBMISSIONS / "template", [], backend=backend, only=STARTUP)
    return {r.check: r for r in results}


@pytest.mark.parametrize("check", STARTUP)
def test_the_template_passes(template_results, check):
    result = template_results.get(check)
    assert result is not None, f"{check} did not run"
    assert result.passed, f"{result.name}: {result.message} (fix: {result.fix})"


@pytest.mark.parametrize("submission", REFERENCE + ATTACKS)
def test_reference_constructor_stores_only_its_params(submission):
    from harness.execution.worker import constructor_report

    cls = entry_class(submission)
    manifest = tomllib.loads((SUBMISSIONS / submission / "submission.toml").read_text())
    params = manifest.get("params", {})
    assert constructor_report(cls, cls(**params), params) == {"extra": [], "not_stored": []}


def test_an_attack_hand_in_is_checked_by_poisoning_a_training_split(backend):
    results = check_submission(
        SUBMISSIONS / "attacks" / "blended", [], backend=backend, only=[*STARTUP, "check_poisons"]
    )
    assert {r.check for r in results} == {*STARTUP, "check_poisons"}
    assert all(r.passed for r in results), [(r.name, r.message) for r in results if not r.passed]


@pytest.mark.slow
@pytest.mark.parametrize("submission", REFERENCE + ATTACKS)
def test_reference_submission_passes_every_check(submission, backend):
    from harness.conformance import CHECK_PROFILE
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    models = build_profile(load_profile(CHECK_PROFILE))
    results = check_submission(SUBMISSIONS / submission, models, backend=backend)
    failed = [f"{r.name}: {r.message}" for r in results if not r.passed]
    assert {r.check for r in results} >= set(STARTUP) and not failed, failed


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
    with pytest.raises(HarnessError, match="unknown conformance check 'check_nothing'"):
        check_submission(SUBMISSIONS / "null", [], only=["check_nothing"])
