"""`make test-slow`: every reference submission answers within its budget on a net with the
contest's class count (the CSAW-HackML 2020 DeepID nets classify 1283 identities; the
`faces-1283` profile stands in for them with SynthFaces), on every track it takes."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from conftest import REPO, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def _answers_unconfigured(folder: Path) -> bool:
    """A reference submission that runs without a configure step: the learned detectors
    (``configure = true``: meta-weights) learn from a profile's training split, and
    faces-1283 has none (two models); they are measured on the profiles that do."""
    manifest = folder / "submission.toml"
    return manifest.is_file() and not tomllib.loads(manifest.read_text()).get("configure", False)


REFERENCE = sorted(
    p.name
    for p in (REPO / "submissions").iterdir()
    if p.name != "template" and _answers_unconfigured(p)
)
PROFILE = "faces-1283"


def test_every_reference_submission_answers_within_budget_on_1283_classes(tmp_path, backend):
    from harness.results import ResultsStore
    from harness.submission.manifest import load_submission

    run_cli("zoo", "build", "--profile", PROFILE, check=True)
    db = tmp_path / "r.sqlite"
    folders = [str(REPO / "submissions" / name) for name in REFERENCE]
    tracks = "detect,filter,repair,fuzz"
    proc = run_cli("run", *folders, "--profile", PROFILE, "--tracks", tracks, "--db", str(db))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = ResultsStore(db).tasks(PROFILE)
    late = [
        f"{r.submission}/{r.track} on {r.model_id}: {r.status} {r.error}"
        for r in records
        if r.status != "ok"
    ]
    assert records and not late, late
    for name in REFERENCE:
        budget = load_submission(REPO / "submissions" / name).resources.wall_seconds_per_model
        took = [r.seconds or 0.0 for r in records if r.submission == name]
        assert took and max(took) < budget, (name, took, budget)
    # Neural Cleanse screens the 1283 labels first (harness.toolkit.label_scan.scan_labels).
    nc = [r for r in records if r.submission == "neural-cleanse" and r.track == "detect"]
    assert nc and all(r.outputs["extra"]["screened"] for r in nc)
