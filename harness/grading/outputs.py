"""What a grading run writes into its folder:

- ``grades.csv``: one row per student: points per rubric line, failures' cost, rank
  points, late days, total, and the reasons a hand-in lost points;
- ``students/<id>/feedback.md`` and ``students/<id>/results.json`` (Gradescope's
  autograder results format: one test per rubric line with score, max_score, output and
  visibility, so a course on Gradescope uploads it as it is);
- ``summary.md`` for the instructor: the distribution of totals, failures by kind,
  identical hand-ins (same content hash) and hand-ins whose outputs on every model are
  identical;
- ``board.md`` and ``board.csv``, the public board: pseudonyms only (a keyed hash of the
  id with a secret kept in the grading folder, so an id cannot be tried against it); a
  student learns their own pseudonym from their feedback.

Ids, names, reasons, check messages and task errors are untrusted text: every one goes
through the encoder of its file's format (``harness.report.encode``): ``csv_cell`` in the
CSV files, ``md_text`` in the Markdown, ``plain`` in results.json.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.grading.barrier import attempt, grading_log
from harness.grading.batch import Batch
from harness.grading.points import Grade
from harness.grading.roster import is_student_id
from harness.grading.rubric import Rubric
from harness.report.encode import md_text, plain, write_csv


def pseudonym(out: Path, student: str) -> str:
    key_file = out / ".board-key"
    if not key_file.is_file():
        key_file.write_text(secrets.token_hex(16))
        key_file.chmod(0o600)
    name = student.encode("utf-8", "surrogatepass")  # a refused name may not be UTF-8
    digest = hmac.new(key_file.read_text().encode(), name, hashlib.sha256)
    return "entry-" + digest.hexdigest()[:8]


def _utc(when: dt.datetime) -> str:
    """A time as the feedback shows it: in UTC, whatever offset it was given in."""
    return f"{when.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


def _names(students: list[str]) -> str:
    return ", ".join(md_text(s) for s in students)


def _points(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x == x else "-"


# -- identical hand-ins -----------------------------------------------------------------------
def duplicates(batch: Batch) -> list[list[str]]:
    """Groups of students whose hand-ins have the same content."""
    groups: dict[str, list[str]] = {}
    for h in batch.handins:
        if h.content:
            groups.setdefault(h.content, []).append(h.student)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def same_outputs(batch: Batch) -> list[list[str]]:
    """Groups of students whose different hand-ins gave the same outputs on every task."""
    prints: dict[str, list[str]] = {}
    for h in batch.handins:
        recs = batch.records.get(h.stored_name or "", [])
        if not recs or h.error:
            continue
        sig = json.dumps(
            sorted(
                (
                    r.model_id,
                    r.track,
                    r.status,
                    {k: v for k, v in r.outputs.items() if k != "weights_changed"},
                )
                for r in recs
            ),
            sort_keys=True,
            default=str,
        )
        prints.setdefault(hashlib.sha256(sig.encode()).hexdigest(), []).append(h.student)
    contents = {h.student: h.content for h in batch.handins}
    out = []
    for group in prints.values():
        if len({contents[s] for s in group}) > 1:  # identical content is reported apart
            out.append(sorted(group))
    return out


# -- files ------------------------------------------------------------------------------------
def write_grades_csv(
    path: Path, rubric: Rubric, grades: dict[str, Grade], roster: dict[str, Any]
) -> None:
    """grades.csv: every cell through ``csv_cell`` (no cell a spreadsheet reads as a
    formula)."""
    head = ["id", "name", *(line.name for line in rubric.lines), "failures", "failure_penalty",
            "rank", "rank_points", "late_days", "late_factor", "total", "max", "reasons"]  # fmt: skip
    rows: list[list[Any]] = [head]
    for sid, g in grades.items():
        reasons = [g.error] if g.error else g.failures
        student = roster.get(sid)
        rows.append(
            [
                sid,
                student.name if student else "",
                *(_points(lp.points) for lp in g.lines),
                len(g.failures),
                _points(g.failure_penalty),
                g.rank or "",
                _points(g.rank_points),
                g.late_days,
                _points(g.late_factor),
                _points(g.total),
                _points(rubric.max_points),
                " | ".join(r or "" for r in reasons),
            ]
        )
    with open(path, "w", newline="", encoding="utf-8") as fh:
        write_csv(fh, rows)


def _check_lines(checks: list[dict[str, Any]]) -> list[str]:
    return [
        f"- {'PASS' if c['passed'] else 'FAIL'} {md_text(c['name'])}"
        + ("" if c["passed"] else f": {md_text(c['message'])} (fix: {md_text(c['fix'])})")
        for c in checks
    ]


def feedback(batch: Batch, rubric: Rubric, g: Grade, out: Path) -> str:
    """A student's feedback.md: every untrusted text through ``md_text``, one line each."""
    h = next((x for x in batch.handins if x.student == g.student), None)
    lines = [
        f"# Feedback for {md_text(g.student)}",
        "",
        f"**Total: {_points(g.total)} of {_points(rubric.max_points)} points.** "
        f"Your entry on the public board is `{pseudonym(out, g.student)}`.",
        "",
    ]
    if g.error:
        lines += [f"Your hand-in was not graded: {md_text(g.error)}", ""]
    lines += ["| rubric line | points | of | measured |", "|---|---|---|---|"]
    lines += [
        f"| {md_text(lp.name)} | {_points(lp.points)} | {_points(lp.max_points)} | "
        f"{md_text(lp.detail)} |"
        for lp in g.lines
    ]
    lines.append("")
    if g.failures:
        lines += [
            f"Failed tasks ({len(g.failures)}, costing {_points(g.failure_penalty)} points):",
            "",
        ]
        lines += [f"- {md_text(f)}" for f in g.failures] + [""]
    if rubric.rank:
        rank = f"rank {g.rank}" if g.rank else "no rank (not measured)"
        lines += [
            f"Ranking by {rubric.rank.track.value} {md_text(rubric.rank.metric)}: {rank}, "
            f"{_points(g.rank_points)} points.",
            "",
        ]
    if rubric.late:
        lines += [
            f"Handed in {_utc(h.handed_in)}; due {_utc(rubric.late.due)}." if h else "No hand-in.",
            f"Late days: {g.late_days} (points kept: {100 * g.late_factor:.0f} %).",
            "",
        ]
    if h and h.checks:
        lines += ["## Submission check (harness submission check)", "", *_check_lines(h.checks), ""]
    return "\n".join(lines)


def gradescope(rubric: Rubric, g: Grade) -> dict[str, Any]:
    """Gradescope's results.json: the total (late factor applied), one test per line."""
    tests = [
        {
            "name": plain(lp.name),
            "number": str(i + 1),
            "score": round(lp.points, 4),
            "max_score": lp.max_points,
            "status": "passed" if lp.points >= lp.max_points else "failed",
            "output": plain(lp.detail),
            "visibility": "visible",
        }
        for i, lp in enumerate(g.lines)
    ]
    if g.failures:
        tests.append(
            {
                "name": "failed tasks",
                "number": str(len(tests) + 1),
                "score": -round(g.failure_penalty, 4),
                "max_score": 0.0,
                "status": "failed",
                "output": "\n".join(plain(f) for f in g.failures),
                "visibility": "visible",
            }
        )
    output = plain(g.error or "")
    if g.late_days:
        output += f"{' ' if output else ''}{g.late_days} late day(s): {100 * g.late_factor:.0f} % of the points kept."
    body: dict[str, Any] = {
        "score": g.total,
        "tests": tests,
        "visibility": "visible",
        "stdout_visibility": "hidden",
    }
    if output:
        body["output"] = output
    return body


def summary(batch: Batch, rubric: Rubric, out: Path) -> str:
    totals = np.array([g.total for g in batch.grades.values()], dtype=float)
    lines = [
        "# Grading summary (for the instructor)",
        "",
        f"{len(batch.grades)} students, {len(batch.handins)} hand-ins; totals out of "
        f"{_points(rubric.max_points)}: mean {_points(float(totals.mean()))}, median "
        f"{_points(float(np.median(totals)))}, min {_points(float(totals.min()))}, max "
        f"{_points(float(totals.max()))}.",
        f"This run: {batch.checks_run} conformance suite(s) and {batch.tasks_run} task(s) run, "
        f"{batch.tasks_stored} task(s) read from the store.",
        "",
        "## Distribution of totals",
        "",
    ]
    edges = np.linspace(0, max(rubric.max_points, 1e-9), 6)
    counts, _ = np.histogram(totals, bins=edges)
    for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True):
        lines.append(f"- {_points(lo)} to {_points(hi)}: {'#' * int(n) + ' ' if n else ''}{n}")
    kinds: dict[str, list[str]] = {}
    for g in batch.grades.values():
        found = (
            [g.error_kind or "not graded"]
            if g.error
            else [f"task: {k.label}" for k in g.failure_kinds]
        )
        for kind in found:
            kinds.setdefault(kind, []).append(g.student)
    lines += ["", "## Failures by kind", ""]
    lines += [
        f"- {md_text(k)}: {len(v)} ({_names(sorted(set(v)))})" for k, v in sorted(kinds.items())
    ] or ["- none"]
    lines += ["", "## Identical hand-ins (same content)", ""]
    lines += [f"- {_names(g)}" for g in duplicates(batch)] or ["- none"]
    lines += ["", "## Different hand-ins with identical outputs on every task", ""]
    lines += [f"- {_names(g)}" for g in same_outputs(batch)] or ["- none"]
    logged = batch.log.entries if batch.log else 0
    if logged:
        lines += ["", f"{logged} failure(s) of this run have their traceback in grading.log."]
    return "\n".join(lines) + "\n"


def board(batch: Batch, rubric: Rubric, out: Path) -> tuple[str, list[list[str]]]:
    ranked = sorted(batch.grades.values(), key=lambda g: (-g.total, pseudonym(out, g.student)))
    rows = [[str(i + 1), pseudonym(out, g.student), _points(g.total)] for i, g in enumerate(ranked)]
    md = [
        "# Board",
        "",
        f"Totals out of {_points(rubric.max_points)}; entries are pseudonyms.",
        "",
        "| # | entry | total |",
        "|---|---|---|",
    ]
    md += [f"| {r[0]} | {r[1]} | {r[2]} |" for r in rows]
    return "\n".join(md) + "\n", rows


def _write_student(batch: Batch, rubric: Rubric, g: Grade, out: Path) -> list[Path]:
    folder = out / "students" / g.student
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feedback.md").write_text(feedback(batch, rubric, g, out), encoding="utf-8")
    (folder / "results.json").write_text(json.dumps(gradescope(rubric, g), indent=1))
    return [folder / "feedback.md", folder / "results.json"]


def write_outputs(batch: Batch, rubric: Rubric, out: Path) -> list[Path]:
    """Every output file of the grading run; the written paths. A student's files that
    cannot be written cost that student alone (the log says why)."""
    log = batch.log or grading_log(out)
    written = []
    grades_csv = out / "grades.csv"
    write_grades_csv(grades_csv, rubric, batch.grades, batch.roster)
    written.append(grades_csv)
    for sid, g in batch.grades.items():
        if not is_student_id(sid):  # a hand-in misnamed: in grades.csv, with the reason
            continue
        files = attempt(log, sid, "write the feedback of",
                        partial(_write_student, batch, rubric, g, out), lambda why: None)  # fmt: skip
        written += files or []
    (out / "summary.md").write_text(summary(batch, rubric, out), encoding="utf-8")
    md, rows = board(batch, rubric, out)
    (out / "board.md").write_text(md, encoding="utf-8")
    with open(out / "board.csv", "w", newline="", encoding="utf-8") as fh:
        write_csv(fh, [["rank", "entry", "total"], *rows])
    return [*written, out / "summary.md", out / "board.md", out / "board.csv"]
