"""`harness grade`: a folder of hand-ins to a grade sheet, in one grading folder.

Each hand-in (a folder, ``.zip`` or ``.tar.gz`` named by its student id) is unpacked into
``OUT/students/<id>/submission`` (``harness.grading.unpack``), read (``submission.toml``),
checked by the conformance suite on the toy zoo, then run on the final profile through the
ordinary runner and sandbox. The results store lives in the grading folder
(``OUT/results.sqlite``) and every task is stored under the hand-in's content hash
(``h-<hash>``), so identical hand-ins run once, a rerun resumes where the batch stopped,
and a changed rubric re-scores from the store without running anything (the conformance
reports are kept by content hash too, in ``OUT/checks/``). A hand-in that fails to unpack,
to parse or to pass its check gets no points on any line, with the reason; one that crashes,
hangs or exhausts its memory on some models loses those tasks only. The batch goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster import Executor, InProcess
from harness.errors import HarnessError
from harness.grading.points import Grade, LinePoints, add_ranks, grade_records, rank_metric
from harness.grading.roster import STUDENT_RE, Student
from harness.grading.rubric import Rubric
from harness.grading.unpack import ARCHIVES, UnpackError, student_id, unpack
from harness.runner import Plan, RunProgress, run_plans
from harness.sandbox.backends import resolve_backend
from harness.store import ResultsStore, TaskRecord
from harness.submission.manifest import SubmissionSpec, load_submission
from harness.tracks import KINDS

#: The run every grading folder's results are stored under.
RUN_ID = "grade"
#: Why a hand-in was not graded, as the instructor's summary counts it.
ERROR_KINDS = {
    "name": "hand-in misnamed",
    "twice": "more than one hand-in",
    "unpack": "hand-in could not be unpacked",
    "manifest": "bad submission.toml",
    "check": "failed the submission check",
    "missing": "no hand-in",
}


@dataclass
class HandIn:
    student: str
    source: Path
    handed_in: dt.datetime
    spec: SubmissionSpec | None = None
    error: str | None = None
    error_kind: str | None = None  # one of ERROR_KINDS' values
    checks: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, kind: str, reason: str) -> None:
        self.error_kind, self.error = ERROR_KINDS[kind], reason

    @property
    def content(self) -> str | None:
        return self.spec.content_hash if self.spec else None

    @property
    def stored_name(self) -> str | None:
        """The name its tasks are stored under: its content hash (identical ones share)."""
        return f"h-{self.content}" if self.content else None


@dataclass
class Batch:
    """A graded batch: hand-ins, grades, and what the run did this time."""

    handins: list[HandIn]
    grades: dict[str, Grade]
    roster: dict[str, Student]
    records: dict[str, list[TaskRecord]]  # stored name -> its records
    checks_run: int = 0
    tasks_run: int = 0
    tasks_stored: int = 0


def _handed_in(path: Path) -> dt.datetime:
    """A hand-in's time: an archive's modification time, a folder's newest file's."""
    if path.is_dir():
        times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
        stamp = max(times, default=path.stat().st_mtime)
    else:
        stamp = path.stat().st_mtime
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc)


def discover(folder: Path) -> list[Path]:
    """The hand-ins in ``folder``: its sub-folders and archives (hidden files left out)."""
    if not folder.is_dir():
        raise HarnessError(
            "no such folder of hand-ins", path=folder, fix="give the folder of hand-ins"
        )
    found = [
        p
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".") and (p.is_dir() or p.name.lower().endswith(ARCHIVES))
    ]
    if not found:
        raise HarnessError(
            "the folder holds no hand-in (folders, .zip, .tar.gz, .tgz, .tar)",
            path=folder,
            fix="put one folder or archive per student in it, named by the student id",
        )
    return found


def prepare(sources: list[Path], out: Path, roster: dict[str, Student]) -> list[HandIn]:
    """Unpack and read every hand-in into its student's folder."""
    handins: list[HandIn] = []
    by_id: dict[str, list[Path]] = {}
    for source in sources:
        by_id.setdefault(student_id(source), []).append(source)
    for sid, paths in by_id.items():
        source = paths[0]
        student = roster.get(sid)
        when = student.submitted if student and student.submitted else _handed_in(source)
        h = HandIn(sid, source, when)
        handins.append(h)
        if not STUDENT_RE.match(sid):
            h.fail(
                "name", f"{source.name}: the name is not a student id (letters, digits, . _ - @ +)"
            )
            continue
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            h.fail("twice", f"{len(paths)} hand-ins for one student ({names}): keep one")
            continue
        try:
            root = unpack(source, out / "students" / sid / "submission")
        except UnpackError as exc:
            h.fail("unpack", f"{source.name}: {exc.problem} (fix: {exc.fix})")
            continue
        try:
            h.spec = load_submission(root)
        except HarnessError as exc:
            h.fail("manifest", f"submission.toml: {exc.problem} (fix: {exc.fix})")
    return handins


# -- conformance, once per content ------------------------------------------------------------
def _check_job(job: tuple[Path, str, list[Any]]) -> list[dict[str, Any]]:
    """One hand-in's conformance report; a suite that cannot run is a failed check."""
    from harness.conformance import check_submission

    folder, backend, models = job
    try:
        return [dataclasses.asdict(r) for r in check_submission(folder, models, backend=backend)]
    except HarnessError as exc:
        return [
            {
                "name": "submission check runs",
                "passed": False,
                "message": exc.problem,
                "fix": exc.fix,
                "check": "",
            }
        ]


def run_checks(handins: list[HandIn], out: Path, backend: str, executor: Executor) -> int:
    """Every distinct hand-in's conformance report (kept in OUT/checks/HASH.json); a hand-in
    with a failed check is not run. Returns how many suites ran this time."""
    from harness.conformance import CHECK_PROFILE
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    folder = out / "checks"
    folder.mkdir(parents=True, exist_ok=True)
    todo: dict[str, HandIn] = {}
    for h in handins:
        if h.spec and not (folder / f"{h.content}.json").is_file():
            todo.setdefault(str(h.content), h)
    if todo:
        models = build_profile(load_profile(CHECK_PROFILE))
        jobs = [(h.spec.path, backend, models) for h in todo.values() if h.spec]
        by_path = {str(h.spec.path): key for key, h in todo.items() if h.spec}
        for job, results in executor.map_unordered(_check_job, jobs):
            (folder / f"{by_path[str(job[0])]}.json").write_text(json.dumps(results, indent=1))
    for h in handins:
        if h.spec:
            h.checks = json.loads((folder / f"{h.content}.json").read_text())
            failed = [c for c in h.checks if not c["passed"]]
            if failed:
                reasons = "; ".join(f"{c['name']}: {c['message']}" for c in failed)
                h.fail("check", f"submission check failed: {reasons}")
    return len(todo)


# -- the batch --------------------------------------------------------------------------------
def grade_batch(
    handins_dir: Path,
    rubric: Rubric,
    profile: str,
    out: Path,
    *,
    roster: dict[str, Student] | None = None,
    backend: str = "auto",
    executor: Executor | None = None,
    progress: RunProgress | None = None,
    command: str | None = None,
) -> Batch:
    """Grade every hand-in of ``handins_dir`` on ``profile`` into the folder ``out``."""
    backend = resolve_backend(backend)
    if backend != "bwrap":
        raise HarnessError(
            "grading needs the bwrap sandbox; the process backend does not isolate hand-ins",
            fix="install bubblewrap (apt-get install bubblewrap) and use --backend bwrap",
        )
    roster = roster or {}
    executor = executor or InProcess()
    out.mkdir(parents=True, exist_ok=True)
    handins = prepare(discover(handins_dir), out, roster)
    checks_run = run_checks(handins, out, backend, executor)
    store = ResultsStore(out / "results.sqlite")
    plans: dict[str, Plan] = {}
    for h in handins:
        if h.spec and not h.error and h.stored_name not in plans:
            spec = dataclasses.replace(h.spec, name=str(h.stored_name))
            plans[str(h.stored_name)] = Plan(spec, [t for k in KINDS for t in k.answers])
    summary = run_plans(
        list(plans.values()),
        profile,
        store,
        backend=backend,
        run_id=RUN_ID,
        progress=progress,
        executor=executor,
        command=command,
    )
    records: dict[str, list[TaskRecord]] = {}
    for r in store.tasks(RUN_ID):
        records.setdefault(r.submission, []).append(r)
    store.close()
    batch = Batch(handins, {}, roster, records, checks_run, summary.done, summary.skipped)
    batch.grades = score(batch, rubric)
    return batch


def score(batch: Batch, rubric: Rubric) -> dict[str, Grade]:
    """Every student's grade from the stored records (roster students without a hand-in
    get a row with no points)."""
    grades: dict[str, Grade] = {}
    values: dict[str, float | None] = {}
    for h in batch.handins:
        if h.error or not h.stored_name:
            grades.setdefault(
                h.student, Grade(h.student, error=h.error or "not graded", error_kind=h.error_kind)
            )
            for line in rubric.lines:
                grades[h.student].lines.append(_zero(line.name, line.points, h.error))
            continue
        recs = batch.records.get(h.stored_name, [])
        grades[h.student] = grade_records(h.student, rubric, recs)
        values[h.student] = rank_metric(rubric, recs)
    for sid in batch.roster:
        if sid not in grades:
            g = Grade(sid, error="no hand-in", error_kind=ERROR_KINDS["missing"])
            g.lines = [_zero(line.name, line.points, "no hand-in") for line in rubric.lines]
            grades[sid] = g
    add_ranks(list(grades.values()), values, rubric)
    if rubric.late:
        for h in batch.handins:
            student = batch.roster.get(h.student)
            ext = student.extension_days if student else 0.0
            g = grades[h.student]
            g.late_days = rubric.late.days_late(h.handed_in, ext)
            g.late_factor = rubric.late.factor(g.late_days)
    return dict(sorted(grades.items()))


def _zero(name: str, points: float, why: str | None) -> LinePoints:
    return LinePoints(name, 0.0, points, None, why or "not graded")
