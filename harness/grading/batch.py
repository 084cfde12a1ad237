"""`harness grade`: a folder of hand-ins to a grade sheet, in one grading folder.

Each hand-in (a folder or an archive named by its student id: ``harness.grading.handins``)
is unpacked into ``OUT/students/<id>/submission`` (``harness.grading.unpack``), read
(``submission.toml``), checked by the conformance suite on the toy zoo, then run on the
final profile through the ordinary runner and sandbox. The results store lives in the
grading folder (``OUT/results.sqlite``) and every task is stored under the hand-in's content
hash (``h-<hash>``), so identical hand-ins run once, a rerun resumes where the batch
stopped, and a changed rubric re-scores from the store without running anything (the
conformance reports are kept by content hash too, in ``OUT/checks/``). A hand-in that fails
to unpack, to parse or to pass its check gets no points on any line, with the reason; one
that crashes, hangs or exhausts its memory on some models loses those tasks only.

Every step of every hand-in runs behind a barrier (``harness.grading.barrier``): whatever
one hand-in makes happen is its own failure with a one-line reason, the traceback goes to
the instructor's ``OUT/grading.log``, and the batch goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.execution.config import RunConfig
from harness.execution.runner import Plan, RunProgress, run_isolated
from harness.executors import Executor, InProcess
from harness.grading.barrier import FailureLog, attempt, grading_log, reason_of
from harness.grading.handins import discover, handed_in, student_id
from harness.grading.points import Grade, LinePoints, add_ranks, grade_records, rank_metric
from harness.grading.roster import Student, is_student_id
from harness.grading.rubric import Rubric
from harness.grading.unpack import unpack
from harness.results import ResultsStore, TaskRecord
from harness.sandbox.backends import resolve_backend
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
    "run": "could not be run",
    "score": "could not be scored",
    "roster": "roster row unusable",
    "missing": "no hand-in",
}


#: Why a hand-in asking for poisoned samples is not graded: oracle submissions are reference
#: rows (docs/SUBMITTING.md), never a student's entry.
ORACLE_REFUSED = (
    "submission.toml: oracle = true asks for poisoned test samples, which only reference "
    "rows get (fix: remove the oracle line)"
)


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
    log: FailureLog | None = None  # the instructor's log of this run's failures
    checks_run: int = 0
    tasks_run: int = 0
    tasks_stored: int = 0


def _refused_name(source: Path) -> str:
    """Why a hand-in's name is refused; the name quoted with its escapes (a newline, the
    bytes of a name that is not UTF-8), so the reason stays one line."""
    return f"{source.name!r}: the name is not a student id (letters, digits, . _ - @ +)"


def _prepare_one(
    h: HandIn, paths: list[Path], out: Path, roster: dict[str, Student], log: FailureLog
) -> None:
    """Unpack and read one student's hand-in into their folder; every step behind the
    barrier, so a failure is ``h``'s alone."""
    source, sid = h.source, h.student
    if not is_student_id(sid):
        h.fail("name", _refused_name(source))
        return
    if len(paths) > 1:
        names = ", ".join(p.name for p in paths)
        h.fail("twice", f"{len(paths)} hand-ins for one student ({names}): keep one")
        return
    _time_of(h, roster, log)
    if h.error:
        return
    root = attempt(
        log, sid, "unpack", lambda: unpack(source, out / "students" / sid / "submission"),
        lambda why: h.fail("unpack", f"{source.name}: {why}"),
    )  # fmt: skip
    if root is None:
        return
    h.spec = attempt(
        log, sid, "read the submission.toml of", lambda: load_submission(root),
        lambda why: h.fail("manifest", f"submission.toml: {why}"),
    )  # fmt: skip
    if h.spec is not None and h.spec.oracle:
        h.fail("manifest", ORACLE_REFUSED)


def _time_of(h: HandIn, roster: dict[str, Student], log: FailureLog) -> None:
    """The hand-in's time: the roster's, else its file's (a time that is no date is the
    hand-in's failure)."""
    student = roster.get(h.student)
    if student and student.submitted:
        h.handed_in = student.submitted
        return
    when = attempt(log, h.student, "read the time of", lambda: handed_in(h.source),
                   lambda why: h.fail("unpack", f"{h.source.name}: {why}"))  # fmt: skip
    if when is None and not h.error:
        h.fail(
            "unpack",
            f"{h.source.name}: its modification time is not a date (fix: hand it in again, "
            "or give its time in the roster's submitted column)",
        )
    h.handed_in = when or h.handed_in


def prepare(
    sources: list[Path],
    out: Path,
    roster: dict[str, Student],
    log: FailureLog | None = None,
) -> list[HandIn]:
    """Unpack and read every hand-in into its student's folder; one hand-in's failure is
    its own (``HandIn.error``), never the batch's."""
    log = log or grading_log(out)
    by_id: dict[str, list[Path]] = {}
    for source in sources:
        by_id.setdefault(student_id(source), []).append(source)
    handins: list[HandIn] = []
    for sid, paths in by_id.items():
        h = HandIn(sid, paths[0], dt.datetime.fromtimestamp(0, dt.timezone.utc))
        handins.append(h)
        _prepare_one(h, paths, out, roster, log)
    return handins


# -- conformance, once per content ------------------------------------------------------------
#: A conformance report's line for a suite that could not run.
SUITE = "submission check runs"


def _check_job(job: tuple[Path, str, list[Any]]) -> list[dict[str, Any]]:
    """One hand-in's conformance report; a suite that cannot run is a failed check (one
    that raised something other than a HarnessError carries its traceback, for the log)."""
    from harness.conformance import check_submission

    folder, backend, models = job
    try:
        return [dataclasses.asdict(r) for r in check_submission(folder, models, backend=backend)]
    except HarnessError as exc:
        return [{"name": SUITE, "passed": False, "message": exc.problem, "fix": exc.fix,
                 "check": ""}]  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the barrier: this hand-in's failure alone
        return [{"name": SUITE, "passed": False, "message": f"{type(exc).__name__}: {exc}",
                 "fix": "", "check": "", "traceback": traceback.format_exc()}]  # fmt: skip


def _keep_report(h: HandIn, results: list[dict[str, Any]], path: Path, log: FailureLog) -> None:
    """Keep a conformance report by content; one that ended in an unexpected exception is
    logged and not kept (a rerun tries again), and fails its hand-in for this run."""
    broken = next((r for r in results if "traceback" in r), None)
    if broken is None:
        path.write_text(json.dumps(results, indent=1))
        return
    log.write_text(h.student, "check", broken["traceback"])
    message = log.redact(str(broken["message"]))[:300]
    h.fail("check", f"the submission check could not run ({message}); the operator's "
                    f"{log.name} has the details")  # fmt: skip


def _read_report(h: HandIn, path: Path) -> None:
    """A kept report onto its hand-in; a failed check fails it."""
    h.checks = json.loads(path.read_text())
    failed = [c for c in h.checks if not c["passed"]]
    if failed:
        reasons = "; ".join(f"{c['name']}: {c['message']}" for c in failed)
        h.fail("check", f"submission check failed: {reasons}")


def run_checks(
    handins: list[HandIn],
    out: Path,
    backend: str,
    executor: Executor,
    log: FailureLog | None = None,
) -> int:
    """Every distinct hand-in's conformance report (kept in OUT/checks/HASH.json); a hand-in
    with a failed check is not run. Returns how many suites ran this time."""
    from harness.conformance import CHECK_PROFILE
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    log = log or grading_log(out)
    folder = out / "checks"
    folder.mkdir(parents=True, exist_ok=True)
    todo: dict[str, HandIn] = {}
    for h in handins:
        if h.spec and not h.error and not (folder / f"{h.content}.json").is_file():
            todo.setdefault(str(h.content), h)
    if todo:
        models = build_profile(load_profile(CHECK_PROFILE))
        jobs = [(h.spec.path, backend, models) for h in todo.values() if h.spec]
        by_path = {str(h.spec.path): key for key, h in todo.items() if h.spec}
        for job, results in executor.map_unordered(_check_job, jobs):
            key = by_path[str(job[0])]
            _keep_report(todo[key], results, folder / f"{key}.json", log)
    for h in handins:
        if h.spec and not h.error:
            report = folder / f"{h.content}.json"
            if not report.is_file():  # its suite could not run: a twin of a failed hand-in
                twin = todo.get(str(h.content))
                h.fail("check", (twin and twin.error) or "the submission check could not run")
                continue
            attempt(log, h.student, "read the check report of", partial(_read_report, h, report),
                    partial(h.fail, "check"))  # fmt: skip
    return len(todo)


# -- running ----------------------------------------------------------------------------------
def run_handins(
    handins: list[HandIn],
    profile: str,
    store: ResultsStore,
    log: FailureLog,
    config: RunConfig,
    *,
    executor: Executor | None = None,
    progress: RunProgress | None = None,
) -> tuple[int, int]:
    """Run every distinct gradable hand-in on ``profile`` (oracle off) as ``config`` says,
    under the run ``RUN_ID``; a hand-in whose run raised is failed with the reason, the
    others' tasks stored. (tasks run, tasks found in the store)."""
    plans: dict[str, Plan] = {}
    for h in handins:
        if h.spec and not h.error and h.stored_name not in plans:
            # oracle=False again: a graded run never hands out poisoned samples.
            spec = dataclasses.replace(h.spec, name=str(h.stored_name), oracle=False)
            plans[str(h.stored_name)] = Plan(spec, [t for k in KINDS for t in k.answers])
    config = dataclasses.replace(config, run_id=RUN_ID)
    summary, failures = run_isolated(list(plans.values()), profile, store, config,
                                     executor=executor, progress=progress)  # fmt: skip
    for h in handins:
        exc = failures.get(str(h.stored_name))
        if exc is not None and not h.error:
            log.write(h.student, "run", exc)
            h.fail("run", reason_of(exc, "run", log))
    return summary.done, summary.skipped


# -- the batch --------------------------------------------------------------------------------
def grade_batch(
    handins_dir: Path,
    rubric: Rubric,
    profile: str,
    out: Path,
    config: RunConfig = RunConfig(),
    *,
    roster: dict[str, Student] | None = None,
    executor: Executor | None = None,
    progress: RunProgress | None = None,
) -> Batch:
    """Grade every hand-in of ``handins_dir`` on ``profile`` into the folder ``out``, run
    as ``config`` says (its backend must be bwrap; the tasks are stored under ``RUN_ID``
    whatever its run id); one hand-in's failure is its own row, never the batch's."""
    config = dataclasses.replace(config, backend=resolve_backend(config.backend))
    if config.backend != "bwrap":
        raise HarnessError(
            "grading needs the bwrap sandbox; the process backend does not isolate hand-ins",
            fix="install bubblewrap (apt-get install bubblewrap) and use --backend bwrap",
        )
    roster = roster or {}
    executor = executor or InProcess()
    out.mkdir(parents=True, exist_ok=True)
    log = grading_log(out, handins_dir)
    handins = prepare(discover(handins_dir), out, roster, log)
    checks_run = run_checks(handins, out, config.backend, executor, log)
    store = ResultsStore(out / "results.sqlite")
    try:
        done, skipped = run_handins(handins, profile, store, log, config, executor=executor,
                                    progress=progress)  # fmt: skip
        records: dict[str, list[TaskRecord]] = {}
        for r in store.tasks(RUN_ID):
            records.setdefault(r.submission, []).append(r)
    finally:
        store.close()
    batch = Batch(handins, {}, roster, records, log, checks_run, done, skipped)
    batch.grades = score(batch, rubric)
    return batch


# -- scoring ----------------------------------------------------------------------------------
def _not_graded(student: str, rubric: Rubric, why: str, kind: str | None) -> Grade:
    g = Grade(student, error=why, error_kind=kind)
    g.lines = [_zero(line.name, line.points, why) for line in rubric.lines]
    return g


def _late(batch: Batch, rubric: Rubric, h: HandIn, g: Grade) -> None:
    assert rubric.late is not None
    student = batch.roster.get(h.student)
    ext = student.extension_days if student else 0.0
    g.late_days = rubric.late.days_late(h.handed_in, ext)
    g.late_factor = rubric.late.factor(g.late_days)


def score(batch: Batch, rubric: Rubric) -> dict[str, Grade]:
    """Every student's grade from the stored records (roster students without a hand-in
    get a row with no points; a roster row that cannot be used, one with its reason)."""
    log = batch.log or FailureLog(None)
    grades: dict[str, Grade] = {}
    values: dict[str, float | None] = {}
    for h in batch.handins:
        if h.error or not h.stored_name:
            why = h.error or "not graded"
            grades.setdefault(h.student, _not_graded(h.student, rubric, why, h.error_kind))
            continue
        recs = batch.records.get(h.stored_name, [])
        got = attempt(log, h.student, "score", partial(_points_of, h.student, rubric, recs),
                      partial(h.fail, "score"))  # fmt: skip
        if got is None:
            grades[h.student] = _not_graded(h.student, rubric, str(h.error), h.error_kind)
            continue
        grades[h.student], values[h.student] = got
    for sid, student in batch.roster.items():
        if student.error:
            grades[sid] = _not_graded(sid, rubric, student.error, ERROR_KINDS["roster"])
            values.pop(sid, None)
        elif sid not in grades:
            grades[sid] = _not_graded(sid, rubric, "no hand-in", ERROR_KINDS["missing"])
    add_ranks(list(grades.values()), values, rubric)
    if rubric.late:
        for h in batch.handins:
            g = grades[h.student]
            if g.error_kind == ERROR_KINDS["roster"]:
                continue  # the roster row's extension is unknown
            attempt(log, h.student, "score the lateness of", partial(_late, batch, rubric, h, g),
                    partial(h.fail, "score"))  # fmt: skip
            if h.error and g.error is None:
                grades[h.student] = _not_graded(h.student, rubric, h.error, h.error_kind)
    return dict(sorted(grades.items()))


def _points_of(
    student: str, rubric: Rubric, records: list[TaskRecord]
) -> tuple[Grade, float | None]:
    """A hand-in's grade before ranks and lateness, and the value it is ranked by."""
    return grade_records(student, rubric, records), rank_metric(rubric, records)


def _zero(name: str, points: float, why: str | None) -> LinePoints:
    return LinePoints(name, 0.0, points, None, why or "not graded")
