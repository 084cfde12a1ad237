"""`harness grade` on a class whose folder mixes hostile and unusual hand-ins with valid
ones (tests/handin_factory.py): one call exits 0, every valid hand-in is scored, every bad
one is refused with its reason, and no output carries what the hand-ins inject (issue 42;
the 40 hand-ins of its check: `python tests/handin_factory.py DEST --count 40`).

Cheap on purpose: the valid hand-ins are copies of submissions/null (one check suite, one
run on the two-model toy zoo); the one that injects through its task errors is the only
other content that runs."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from conftest import run_cli
from handin_factory import ABSURD, PAYLOAD, RUBRIC, build, mix, write_roster

from harness.grading.handins import student_id
from harness.report.encode import FORMULA_START, csv_cell

pytestmark = pytest.mark.sandbox
HOSTILE = [
    "zip_encrypted", "zip_damaged", "tgz_truncated", "zip_empty_name", "handin_name_not_utf8",
    "deep_params", "huge_params", "dangling_link", "fifo", "id_formula",
]  # fmt: skip
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HTML_TAG = re.compile(r"<[A-Za-z/!?]")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, toy_zoo, backend):
    root = tmp_path_factory.mktemp("hostile-course")
    expected = build(root / "handins", mix(12, HOSTILE))
    write_roster(root / "roster.csv", expected)
    (root / "rubric.toml").write_text(RUBRIC)
    before = sorted(p.name for p in (root / "handins").iterdir())
    proc = run_cli(
        "grade", str(root / "handins"), "--rubric", str(root / "rubric.toml"),
        "--roster", str(root / "roster.csv"), "--profile", "toy", "--out", str(root / "out"),
        "--backend", backend, "--workers", "1",
    )  # fmt: skip
    assert sorted(p.name for p in (root / "handins").iterdir()) == before
    with open(root / "out" / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    return root, proc, expected, rows


def test_one_call_exits_0_and_grades_everyone_it_can(graded):
    root, proc, expected, rows = graded
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream and "\x1b" not in stream and not CONTROL.search(stream)
    for sid, e in expected.items():
        row = rows[csv_cell(student_id(Path(e.entry)))]  # a misnamed one: its name, encoded
        if e.graded:
            assert float(row["total"]) > 0, (sid, row)
        else:
            assert e.says in row["reasons"] and row["total"] == "0", (sid, row["reasons"])
    assert ABSURD in rows and "extension_days" in rows[ABSURD]["reasons"]
    assert not (root / "out" / "grading.log").exists()  # every refusal was one the harness wrote


def test_a_task_error_costs_its_task_and_injects_nothing(graded):
    root, proc, expected, rows = graded
    sid = next(s for s in expected if "task-error" in s)
    assert rows[sid]["failures"] == "1" and "RuntimeError" in rows[sid]["reasons"]
    feedback = (root / "out" / "students" / sid / "feedback.md").read_text()
    lines = feedback.splitlines()
    failed = [line for line in lines if "RuntimeError" in line]
    assert len(failed) == 1 and failed[0].startswith("- detect / ")
    assert not any(line.startswith("## Total") for line in lines)
    assert "&lt;script&gt;" in failed[0] and "<script>" not in feedback
    assert "failed" in proc.stderr and PAYLOAD[:4] not in proc.stderr


def test_no_output_carries_an_injection(graded):
    root, _, _, _ = graded
    out = root / "out"
    files = [*out.glob("*.md"), *out.glob("*.csv"), *out.glob("students/*/feedback.md")]
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not CONTROL.search(text.replace("\n", "")), path
        if path.suffix == ".md":
            assert not HTML_TAG.search(text), path
        else:
            for row in csv.reader(io.StringIO(text)):
                assert not any(cell.startswith(FORMULA_START) for cell in row), (path, row)
    summary = (out / "summary.md").read_text()
    assert "hand-in could not be unpacked" in summary and "bad submission.toml" in summary


def test_harness_run_goes_on_past_folders_it_cannot_read(tmp_path, toy_zoo, backend):
    """`harness run` beside submissions/null: a manifest nested thousands deep and one
    that is a FIFO are refused with a line each; null's tasks run; exit 0."""
    from handin_factory import NULL

    deep, fifo = tmp_path / "deep", tmp_path / "fifo"
    for folder in (deep, fifo):
        folder.mkdir()
        (folder / "submission.py").write_text("class X: ...\n")
    (deep / "submission.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    os.mkfifo(fifo / "submission.toml")
    proc = run_cli(
        "run", str(deep), str(NULL), str(fifo), "--profile", "toy", "--tracks", "detect",
        "--backend", backend, "--db", str(tmp_path / "r.sqlite"), "--run-id", "barrier",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    refused = [line for line in proc.stderr.splitlines() if line.startswith("refused:")]
    assert len(refused) == 2 and "nest more than" in refused[0] and "FIFO" in refused[1]
    assert "Traceback" not in proc.stderr and "2 tasks done" in proc.stdout
