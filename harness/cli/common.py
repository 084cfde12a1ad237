"""What every `harness` command shares: the typer apps, consoles, option types, the
one-line error handling, progress bars and the results store opener."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from harness.errors import HarnessError

F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True)
out = Console(soft_wrap=True)  # tables and JSON go to pipes unwrapped

app = typer.Typer(
    help="Evaluate defenses against backdoored neural networks: build a zoo of "
    "clean and backdoored models, run submissions in a sandbox, score them and "
    "render a leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
zoo_app = typer.Typer(help="Build and inspect the model zoo.", no_args_is_help=True)
sub_app = typer.Typer(help="Work with submission folders.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
export_app = typer.Typer(help="Export repaired models for other graders.", no_args_is_help=True)
app.add_typer(sub_app, name="submission")
app.add_typer(export_app, name="export")

ProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        "-p",
        help="Zoo profile: a name in models_zoo/ (tiny, default, ...) or a path to a .toml file.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
BackendOpt = Annotated[
    str,
    typer.Option(
        help="Sandbox backend: auto (bwrap where usable), "
        "bwrap, or process (no isolation; never official)."
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Results store (SQLite). Default: $HARNESS_HOME/results.sqlite."),
]


def user_errors(fn: F) -> F:
    """Print a user-caused error (HarnessError, or an OS/SQLite error on a user path) as one
    line on stderr and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            line = exc.line()
        except (
            OSError,
            sqlite3.Error,
        ) as exc:  # unwritable output, full disk, locked store
            where = getattr(exc, "filename", None)
            line = HarnessError(
                str(getattr(exc, "strerror", None) or exc),
                path=where,
                fix="check the path exists and is writable (see --out, --db, $HARNESS_HOME)",
            ).line()
        err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    """The progress bar of long commands: on a terminal, or anywhere with HARNESS_PROGRESS=1."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("HARNESS_PROGRESS") != "1",
    )


def task_reporter(bar: Progress, task: Any) -> Callable[[str, str, str, Any], None]:
    """The runner's per-task callback: show the task in hand, print failures, advance."""

    def on_task(sub: str, model: str, track: str, res: Any) -> None:
        if res is None:
            bar.update(task, description=f"{sub} · {track} · {model}")
            return
        if res.status != "ok":
            bar.console.print(
                f"[red]failed[/red] {sub} {track} {model}: {res.error}", highlight=False
            )
        bar.advance(task)

    return on_task


def results_store(db: Path | None) -> Any:
    """The results store at ``db``, or the default one under $HARNESS_HOME."""
    from harness.paths import default_results_db
    from harness.store import ResultsStore

    return ResultsStore(db or default_results_db())


# -- zoo ------------------------------------------------------------------------------------
