"""`harness grade`: a folder of hand-ins to a grade sheet (docs/GRADING.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import (
    BackendOpt,
    ProfileOpt,
    Reporter,
    SchedulerOpt,
    TaskProgress,
    WorkersOpt,
    app,
    command_line,
    out,
    user_errors,
)


@app.command("grade")
@user_errors
def grade(
    handins: Annotated[
        Path,
        typer.Argument(
            help="Folder of hand-ins: one folder or archive (.zip, .tar, .tar.gz, .tar.bz2, "
            ".tar.xz) per student, named by id."
        ),
    ],
    rubric: Annotated[Path, typer.Option("--rubric", help="The rubric (TOML, docs/GRADING.md).")],
    profile: ProfileOpt = "default",
    roster: Annotated[
        Path | None,
        typer.Option(help="Roster CSV: id, and optionally name, extension_days, submitted."),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="The grading folder (its results store, outputs, work)."),
    ] = Path("grading"),
    backend: BackendOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Grade every hand-in on a zoo profile (the private final zoo: a name, or the path
    of a profile TOML kept outside the repository) into one grading folder. One bad
    hand-in costs only its owner: it is refused with its reason, and the command exits
    0 once it has graded everyone it could (tracebacks go to OUT/grading.log).

    Each hand-in is unpacked safely into OUT/students/ID/, checked with `harness
    submission check`, run in the bwrap sandbox (the process backend is refused), and
    scored by the rubric. Writes grades.csv, per student feedback.md and a Gradescope
    results.json, summary.md for the instructor (duplicates, identical outputs, failures)
    and the public board.md / board.csv under pseudonyms. Run it again to resume; with a
    changed rubric it re-scores from OUT/results.sqlite without running any hand-in."""
    from harness.execution.config import RunConfig
    from harness.executors import open_executor
    from harness.grading.batch import grade_batch
    from harness.grading.outputs import write_outputs
    from harness.grading.roster import load_roster
    from harness.grading.rubric import load_rubric

    rules = load_rubric(rubric)
    students = load_roster(roster) if roster else {}
    config = RunConfig(backend=backend, command=command_line())
    with Reporter("grading") as reporter, open_executor(workers, scheduler) as executor:
        batch = grade_batch(
            handins,
            rules,
            profile,
            out_dir,
            config,
            roster=students,
            executor=executor,
            progress=TaskProgress(reporter),
        )
    write_outputs(batch, rules, out_dir)
    failed = sum(g.error is not None for g in batch.grades.values())
    out.print(
        f"graded {len(batch.grades)} students ({failed} without a gradable hand-in): "
        f"{batch.checks_run} check suite(s) and {batch.tasks_run} task(s) run, "
        f"{batch.tasks_stored} task(s) from the store",
        highlight=False,
    )
    out.print(
        f"wrote {out_dir / 'grades.csv'}, {out_dir / 'summary.md'}, {out_dir / 'board.md'}",
        highlight=False,
        markup=False,
    )
    if batch.log and batch.log.entries:
        out.print(
            f"{batch.log.entries} unexpected failure(s): their tracebacks are in {batch.log.path}",
            highlight=False,
            markup=False,
        )
