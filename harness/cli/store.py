"""`harness store check`, `recover` and `diff`: a results store's health, and what differs
between two."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import DbOpt, app, out, user_errors
from harness.errors import HarnessError

store_app = typer.Typer(help="Check, recover or compare results stores.", no_args_is_help=True)
app.add_typer(store_app, name="store")


def _path(db: Path | None) -> Path:
    from harness.paths import default_results_db

    return db or default_results_db()


@store_app.command("check")
@user_errors
def store_check(db: DbOpt = None) -> None:
    """Run SQLite's consistency check on the store; exit 1 if it is damaged."""
    from harness.results.recover import check

    path = _path(db)
    if not path.is_file():
        raise HarnessError("no results store here", path=path, fix="check --db")
    problems = check(path)
    if problems:
        out.print(f"{path}: damaged: {problems[0]}", highlight=False)
        out.print(f"fix: harness store recover --db {path}", highlight=False)
        raise typer.Exit(1)
    out.print(f"{path}: sound", highlight=False)


@store_app.command("recover")
@user_errors
def store_recover(db: DbOpt = None) -> None:
    """Copy every readable row of a damaged store into a fresh one at the same path (the
    damaged file is kept beside it as NAME.damaged-TIME); rerunning your commands then
    redoes only the tasks that were lost."""
    from harness.results.recover import check, recover

    path = _path(db)
    if path.is_file() and not check(path):
        out.print(f"{path}: sound, nothing to recover", highlight=False)
        return
    report = recover(path)
    counts = ", ".join(f"{n} {table}" for table, n in report.rows.items()) or "nothing"
    out.print(f"recovered {counts}; the damaged file is {report.kept}", highlight=False)
    if report.lost_ranges:
        out.print(f"{report.lost_ranges} unreadable row range(s) were left out", highlight=False)


@store_app.command("diff")
@user_errors
def store_diff(
    first: Annotated[Path, typer.Argument(help="A results store (SQLite).")],
    second: Annotated[Path, typer.Argument(help="The store to compare it with.")],
    run: Annotated[
        str | None, typer.Option("--run", help="Run id in both (default: each one's latest).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Absolute difference allowed in numbers.")
    ] = 0.0,
) -> None:
    """Every task whose status, failure kind, model facts, outputs or scores differ between
    two stores (times, logs and versions are not compared); exit 1 when any does. Checks
    that a change of the harness, or another machine, leaves every stored score as it was."""
    from harness.report.encode import terminal
    from harness.results.diff import compare, report

    diffs, n_first, n_second = compare(first, second, run, tolerance)
    for line in report(diffs, (n_first, n_second)):  # quotes what workers stored
        out.print(terminal(line), highlight=False, markup=False)
    if diffs:
        raise typer.Exit(1)
