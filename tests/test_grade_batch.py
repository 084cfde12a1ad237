"""`harness grade` end to end through bwrap, as an instructor runs it: nine students, eight
hand-ins (a reference defense as a folder and as archives, one late, one broken, one
hostile archive, one without a manifest, several identical) and one student who handed in
nothing. Then the same batch with a changed rubric: no sandbox task and no check runs
again, and only the points change.

What runs where: each distinct content a batch grades costs a conformance suite (a
sandbox per track and one more) and a run on the toy zoo, seconds each. In `make test`
every valid hand-in is feature-squeezing (it takes the filter and repair tracks, so every
rubric line is scored from real tasks): one valid content, plus frank's, which fails its
check (five sandbox starts in all, not nine). `make test-slow` grades the batch as it was
first written as well: null for everyone but carol, who hands in feature-squeezing, so two
valid contents are graded side by side (tests/test_grade_hostile.py grades two valid
contents, null and an injecting one, in `make test`)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import jsonschema
import pytest
from conftest import HOSTILE, REPO, run_cli

pytestmark = pytest.mark.sandbox
DUE = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "gradescope_results.schema.json").read_text()
)

RUBRIC = """
[[line]]
name = "repaired net: clean accuracy"
track = "repair"
metric = "ca"
per_model = true
points = {ca_points}
scale = {{ linear = [0.8, 0.95] }}

[[line]]
name = "repaired net: attack success rate"
track = "repair"
metric = "asr"
per_model = true
points = 10
scale = {{ linear = [0.5, 0.05] }}

[[line]]
name = "input filter"
track = "filter"
metric = "filter_auc"
points = 5
scale = {{ linear = [0.5, 1.0] }}

[failures]
points = 1
max = 5

[late]
due = 2026-12-01T00:00:00Z
penalty = 0.25
max_days = 3
"""
ROSTER = """id,name,extension_days
alice,Alice,0
bob,Bob,0
carol,Carol,0
dave,Dave,0
erin,Erin,1
frank,Frank,0
grace,Grace,0
heidi,Heidi,0
ivan,Ivan,0
"""


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _zip(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in _files(folder):
            zf.write(f, prefix + f.relative_to(folder).as_posix())
    return dest


def _tar(folder: Path, dest: Path, prefix: str = "") -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for f in _files(folder):
            tf.add(f, prefix + f.relative_to(folder).as_posix())
    return dest


def _handins(root: Path, base: str) -> Path:
    """The hand-ins: alice, bob, dave and erin hand in ``base`` (a reference submission),
    carol feature-squeezing (the same content when ``base`` is feature-squeezing)."""
    own, squeeze = REPO / "submissions" / base, REPO / "submissions" / "feature-squeezing"
    h = root / "handins"
    h.mkdir()
    shutil.copytree(own, h / "alice", ignore=shutil.ignore_patterns("__pycache__"))
    _zip(own, h / "bob.zip")  # the same content as alice's folder
    _tar(squeeze, h / "carol.tar.gz", prefix="feature-squeezing/")
    _tar(own, h / "dave.tgz", prefix="my-defense/")  # the same again, inside a folder
    _zip(own, h / "erin.zip")  # handed in late (below)
    _zip(HOSTILE / "bad_entry", h / "frank.zip")  # fails the submission check
    with zipfile.ZipFile(h / "grace.zip", "w") as zf:  # hostile: climbs out of its folder
        zf.writestr("submission.toml", (own / "submission.toml").read_text())
        zf.writestr("../../escaped.py", "print('out')\n")
    _zip(own, h / "inner.zip")
    with zipfile.ZipFile(h / "heidi.zip", "w") as zf:  # the manifest only in a nested archive
        zf.write(h / "inner.zip", "inner.zip")
    (h / "inner.zip").unlink()
    on_time = (DUE - dt.timedelta(days=1)).timestamp()
    for p in h.rglob("*"):
        os.utime(p, (on_time, on_time))
    late = (DUE + dt.timedelta(hours=36)).timestamp()  # 1.5 days late, 1 day extension
    os.utime(h / "erin.zip", (late, late))
    return h


def _grade(root: Path, handins: Path, backend: str, ca_points: int) -> tuple[str, list[dict]]:
    rubric = root / f"rubric-{ca_points}.toml"
    rubric.write_text(RUBRIC.format(ca_points=ca_points))
    proc = run_cli(
        "grade", str(handins), "--rubric", str(rubric), "--profile", "toy",
        "--roster", str(root / "roster.csv"), "--out", str(root / "out"),
        "--backend", backend, "--workers", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(root / "out" / "grades.csv") as fh:
        return proc.stdout, list(csv.DictReader(fh))


@pytest.fixture(
    scope="module",
    params=["feature-squeezing", pytest.param("null", marks=pytest.mark.slow)],
)
def graded(request, tmp_path_factory, toy_zoo, backend):
    """The batch graded twice (the second time with a changed rubric), everyone but carol
    handing in the param's reference submission (see the module's docstring)."""
    root = tmp_path_factory.mktemp("course")
    (root / "roster.csv").write_text(ROSTER)
    handins = _handins(root, request.param)
    first = _grade(root, handins, backend, ca_points=10)
    second = _grade(root, handins, backend, ca_points=20)
    return root, first, second, request.param


def test_every_student_gets_a_row_with_the_reasons(graded):
    root, (stdout, rows), _, _ = graded
    assert "graded 9 students (4 without a gradable hand-in)" in stdout
    by = {r["id"]: r for r in rows}
    assert sorted(by) == [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "frank",
        "grace",
        "heidi",
        "ivan",
    ]
    assert float(by["alice"]["total"]) > 5 and float(by["carol"]["total"]) > 5
    # identical hand-ins score identically; erin's lateness costs a quarter
    line = "repaired net: attack success rate"
    assert by["alice"][line] == by["bob"][line] == by["dave"][line] == by["erin"][line]
    assert by["erin"]["late_days"] == "1" and by["erin"]["late_factor"] == "0.75"
    assert float(by["erin"]["total"]) == pytest.approx(0.75 * float(by["alice"]["total"]), abs=0.02)
    assert "submission check failed" in by["frank"]["reasons"] and by["frank"]["total"] == "0"
    assert "climbs out" in by["grace"]["reasons"]
    assert "archives inside are not opened: inner.zip" in by["heidi"]["reasons"]
    assert by["ivan"]["reasons"] == "no hand-in"
    assert not list(root.rglob("escaped.py")), "a hostile member was written"


def test_feedback_results_json_summary_and_board(graded):
    root, _, (_, rows), base = graded  # the files on disk are the second run's
    out = root / "out"
    feedback = (out / "students" / "alice" / "feedback.md").read_text()
    assert "# Feedback for alice" in feedback and "PASS" in feedback
    pseudonym = feedback.split("public board is `")[1].split("`")[0]
    results = json.loads((out / "students" / "erin" / "results.json").read_text())
    jsonschema.validate(results, SCHEMA)
    erin = next(r for r in rows if r["id"] == "erin")
    assert results["score"] == pytest.approx(float(erin["total"]), abs=0.01)
    assert "1 late day" in results["output"]
    summary = (out / "summary.md").read_text()
    # identical content, flagged (carol's too when she hands in what the others do)
    same = (
        "alice, bob, carol, dave, erin" if base == "feature-squeezing" else "alice, bob, dave, erin"
    )
    assert f"- {same}\n" in summary
    assert "failed the submission check: 1 (frank)" in summary
    assert "hand-in could not be unpacked: 2 (grace, heidi)" in summary
    board = (out / "board.md").read_text()
    assert pseudonym in board and not any(sid in board for sid in ("alice", "erin", "ivan"))


def test_a_changed_rubric_rescores_without_running_anything(graded):
    _, (_, before), (stdout, after), _ = graded
    assert "0 check suite(s) and 0 task(s) run" in stdout
    line = "repaired net: clean accuracy"
    for old, new in zip(before, after, strict=True):
        assert float(new[line]) == pytest.approx(2 * float(old[line]), abs=0.02)
        for key in ("failures", "late_days", "reasons", "repaired net: attack success rate"):
            assert old[key] == new[key], (old["id"], key)


def test_grading_refuses_the_unisolated_backend(tmp_path):
    (tmp_path / "h" / "x").mkdir(parents=True)
    (tmp_path / "r.toml").write_text(RUBRIC.format(ca_points=1))
    proc = run_cli(
        "grade", str(tmp_path / "h"), "--rubric", str(tmp_path / "r.toml"), "--backend", "process"
    )
    assert proc.returncode != 0 and "needs the bwrap sandbox" in proc.stderr
    assert "Traceback" not in proc.stderr
