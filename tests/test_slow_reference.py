"""`make test-slow`: every reference submission passes the conformance check in the sandbox,
and `harness reproduce` measures every figure on the default zoo."""

import json

import pytest
from conftest import REPO, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

REFERENCE = sorted(
    p.name for p in (REPO / "submissions").iterdir() if (p / "submission.toml").is_file()
)


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_submission_passes_the_check(name, toy_zoo, backend):
    proc = run_cli("submission", "check", str(REPO / "submissions" / name))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout, proc.stdout


def test_reproduce_measures_every_figure_on_the_default_zoo(tmp_path, backend):
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    build_profile(load_profile("default"))
    out = tmp_path / "REPRODUCTION.md"
    proc = run_cli("reproduce", "--json", "--out", str(out), "--db", str(tmp_path / "r.sqlite"))
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert all(f["holds"] is not None for f in figures), figures  # every figure measured
    held = {f["name"]: f["holds"] for f in figures}
    for name in ("nc-flags-patch", "fine-pruning-patch", "strip-far", "backfuzz-activation"):
        assert held[name], figures
