"""What every `harness` command shares: the typer apps, consoles, option types (and one
options object per command: ``takes_options``), the one-line error handling, progress bars
and the results store opener."""

from __future__ import annotations

import errno
import functools
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.errors import HarnessError
from harness.grading.barrier import FailureLog, reason_of
from harness.report.encode import terminal, terminal_markup

if TYPE_CHECKING:
    from harness.submission.manifest import SubmissionSpec

F = TypeVar("F", bound=Callable[..., Any])
Opts = TypeVar("Opts")
R = TypeVar("R")
err = Console(stderr=True)
out = Console(soft_wrap=True)  # tables and JSON go to pipes unwrapped

app = typer.Typer(
    help="Evaluate defenses against backdoored neural networks: build a zoo of "
    "clean and backdoored models, run submissions in a sandbox, score them and "
    "render a leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help text: a docstring's paragraphs reflow to the terminal, and brackets in it
    # ("[0, 1]") are text, not Rich markup.
    rich_markup_mode=None,
)
zoo_app = typer.Typer(help="Build and inspect the model zoo.", no_args_is_help=True)
sub_app = typer.Typer(help="Work with submission folders.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
export_app = typer.Typer(help="Export repaired models for other graders.", no_args_is_help=True)
app.add_typer(sub_app, name="submission")
app.add_typer(export_app, name="export")

#: The options of the commands that render a run's reports (leaderboard, report).
ReportOutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Output folder (default: leaderboard/ in the repo)."),
]
RenderRunOpt = Annotated[
    str | None, typer.Option("--run-id", help="Run to render (default: the latest).")
]
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
        help="Sandbox backend: auto (bwrap; stops with one line where bwrap cannot run), "
        "bwrap, or process (no isolation: only when named; never official)."
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Results store (SQLite). Default: $HARNESS_HOME/results.sqlite."),
]

WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        envvar="HARNESS_WORKERS",
        help="Worker processes on this machine, one TensorFlow thread each (default: one "
        "per core; 1 runs everything in this process). Ignored with --scheduler.",
        show_default=False,
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="HARNESS_SCHEDULER",
        help="Run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (docs/SCALING.md).",
    ),
]
RetryTimeoutsOpt = Annotated[
    bool,
    typer.Option(
        "--retry-timeouts",
        help="Run again the tasks stored as over their wall-clock limit (a busy machine's "
        "timeouts); their records are replaced. Other failures stay as they are.",
    ),
]


def user_errors(fn: F) -> F:
    """Print a user-caused error (HarnessError, or an OS/SQLite error on a user path) as one
    line on stderr and exit 2 (no traceback). The line may quote untrusted text (a
    manifest's name, a roster's id): it goes through the terminal encoder."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            line = exc.line()
        except (OSError, sqlite3.Error) as exc:  # unwritable output, full disk, locked store
            line = system_error(exc).line()
        err.print(f"[red]error:[/red] {terminal_markup(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def system_error(exc: OSError | sqlite3.Error) -> HarnessError:
    """An operating-system or SQLite error as the one line a user reads."""
    from harness.results.damage import is_damage

    where = getattr(exc, "filename", None)
    text = str(getattr(exc, "strerror", None) or exc)
    if is_damage(exc):  # damage met after the store opened sound
        return HarnessError(
            f"the results store is damaged ({text})",
            fix="`harness store recover --db PATH` keeps every readable row; then rerun",
        )
    if getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in text:
        return HarnessError(
            text if "no space left" in text.lower() else f"{text}: no space left",
            path=where,
            fix="free space on the disk of $HARNESS_HOME (or of --db, --out), then run the "
            "same command again: everything stored so far is kept, only the rest is redone",
        )
    return HarnessError(
        text,
        path=where,
        fix="check the path exists and is writable (see --out, --db, $HARNESS_HOME)",
    )


def progress_bar() -> Progress:
    """The progress bar of long commands: on a terminal, or anywhere with HARNESS_PROGRESS=1."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("HARNESS_PROGRESS") != "1",
    )


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Reporter:
    """Progress of a long command (a zoo build, a run): a rich bar on a terminal; in a log
    file, one line per item done with its own time, the time so far and an ETA. Items that
    took no work (cached models, stored tasks) are counted apart and left out of the rate.

    Use as a context manager; call :meth:`expect` once the work still to do is known."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.bar = progress_bar()
        self.task = self.bar.add_task(label, total=total)
        self.todo = total
        self.done = 0
        self.start = time.perf_counter()

    def __enter__(self) -> Reporter:
        self.bar.__enter__()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def expect(self, todo: int) -> None:
        """``todo`` items will take work (the bar's total)."""
        self.todo = todo
        self.bar.update(self.task, total=todo, completed=0)

    def item(self, text: str, seconds: float | None = None, error: str | None = None) -> None:
        """One item of work finished (``error``: it failed, and why: a worker's text, shown
        through the terminal encoder)."""
        self.done += 1
        text = terminal(text)
        self.bar.update(self.task, advance=1, description=terminal_markup(text))
        if error:
            self.bar.console.print(
                f"[red]failed[/red] {terminal_markup(text)}: {terminal_markup(error)}",
                highlight=False,
                soft_wrap=True,  # one line per failure, however long (a log greps it)
            )
        if not self.bar.disable:
            return
        elapsed = time.perf_counter() - self.start
        line = terminal(text) if seconds is None else f"{terminal(text)} in {seconds:.1f} s"
        line += f" · {self.done}/{self.todo or '?'} · {_clock(elapsed)} so far"
        if self.todo and self.done < self.todo:
            line += f" · ETA {_clock(elapsed / self.done * (self.todo - self.done))}"
        err.print(line, highlight=False, soft_wrap=True, markup=False)

    def note(self, text: str) -> None:
        """A line that is not an item of work (a cached model, a configure step's error)."""
        if self.bar.disable:
            err.print(terminal(text), highlight=False, soft_wrap=True, markup=False)


class TaskProgress:
    """The runner's progress callbacks (``harness.execution.runner.RunProgress``) on a Reporter."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def planned(self, todo: int, skipped: int) -> None:
        self.reporter.expect(todo)
        if skipped:
            self.reporter.note(f"{skipped} task(s) already in the store")

    def task_done(self, sub: str, model: str, track: str, res: Any) -> None:
        error = res.error if res.status != "ok" else None
        self.reporter.item(f"{sub} {track} {model}", res.seconds, error)

    def note(self, text: str) -> None:
        self.reporter.note(text)


def results_store(db: Path | None) -> Any:
    """The results store at ``db``, or the default one under $HARNESS_HOME."""
    from harness.paths import default_results_db
    from harness.results import ResultsStore

    return ResultsStore(db or default_results_db())


def command_line() -> str:
    """The command as the user typed it (``harness`` and its arguments), for the records."""
    return shlex.join(["harness", *sys.argv[1:]])


# -- one folder's failure is its own ----------------------------------------------------------
def operator_log() -> FailureLog:
    """The log of failures that were not the harness's own refusals (tracebacks), for the
    commands that run many submissions: $HARNESS_HOME/logs/harness.log."""
    from harness.paths import harness_home

    return FailureLog(harness_home() / "logs" / "harness.log")


def read_submissions(
    paths: list[Path], log: FailureLog
) -> tuple[list[SubmissionSpec], list[HarnessError]]:
    """Each folder's manifest, behind a barrier: (the specs read, and a refusal for each
    folder that could not be read or whose name another folder of the command already
    holds). Nothing a folder holds stops the others."""
    from harness.submission.manifest import load_submission

    specs: list[SubmissionSpec] = []
    refused: list[HarnessError] = []
    for path in paths:
        try:
            spec = load_submission(path)
        except HarnessError as exc:
            refused.append(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - the barrier: this folder's failure alone
            log.write(str(path), "read", exc)
            refused.append(HarnessError(reason_of(exc, "read", log), path=path))
            continue
        if spec.name in {s.name for s in specs}:
            refused.append(
                HarnessError(
                    f"two submissions share the name {spec.name!r}", path=path, fix="rename one"
                )  # fmt: skip
            )
            continue
        specs.append(spec)
    return specs, refused


def go_on_without(refused: list[HarnessError], kept: int, what: str = "submission folders") -> None:
    """Print each refusal as one line on stderr and go on with the ``kept`` others; with
    none kept, stop: with the one refusal itself, or with a line after theirs."""
    if not kept and len(refused) == 1:
        raise refused[0]
    for exc in refused:
        err.print(f"[yellow]refused:[/yellow] {terminal_markup(exc.line())}", highlight=False,
                  soft_wrap=True)  # fmt: skip
    if not kept:
        raise HarnessError(f"none of the {len(refused)} {what} can be used",
                           fix="see the refusals above")  # fmt: skip


# -- zoo ------------------------------------------------------------------------------------
