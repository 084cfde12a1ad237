"""Where one hand-in's failure stops: at its own row (docs/GRADING.md, "One hand-in never
stops the batch").

Whatever happens while a hand-in is found, unpacked, read, checked, run or scored is that
hand-in's failure: ``attempt`` runs one step of one hand-in and turns any exception into
the hand-in's one-line reason, and the batch goes on. A ``HarnessError`` (a refusal the
harness wrote: a link in an archive, a bad manifest) gives its own line; any other
exception (a library's, or a bug) is named by its type with its message, and its full
traceback goes to the instructor's log in the grading folder, ``OUT/grading.log``, never to
a student. Reasons never show the grading folder's absolute path.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from harness.errors import HarnessError
from harness.report.encode import plain

T = TypeVar("T")
#: The instructor's log, in the grading folder.
LOG_NAME = "grading.log"
#: How much of an unexpected exception's message a reason quotes.
QUOTED = 300


class FailureLog:
    """The operator's log (an instructor's: ``OUT/grading.log``): each failure that was not
    a refusal the harness wrote, with its traceback (every line through ``plain``: no
    escape sequence from a hand-in reaches the terminal that shows the log)."""

    def __init__(self, path: Path | None, *private: Path) -> None:
        self.path = path  # None: count the failures, keep no file (a batch built in memory)
        self.name = path.name if path else "log"
        #: folders whose absolute paths a reason must not show
        self.private = list(private)
        self.entries = 0

    def redact(self, text: str) -> str:
        """``text`` without the absolute paths of the grading folder and the hand-ins'
        folder (a reason quoting a library's message names files there)."""
        for folder in self.private:
            for form in {str(folder.resolve()), str(folder.absolute())}:
                text = text.replace(form + "/", "").replace(form, ".")
        return text

    def write(self, who: str, step: str, exc: BaseException) -> None:
        """One failure, with its traceback."""
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.write_text(who, step, "".join(lines))

    def write_text(self, who: str, step: str, trace: str) -> None:
        """One failure, with a traceback already formatted (one from a cluster worker)."""
        body = "".join(f"    {plain(line)}\n" for line in trace.splitlines())
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        self.entries += 1
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{when} UTC {plain(who)}: {step} failed\n{body}")


def grading_log(out: Path, handins: Path | None = None) -> FailureLog:
    """The instructor's log of the grading folder ``out``; reasons hide both folders."""
    return FailureLog(out / LOG_NAME, out, *([handins] if handins else []))


def reason_of(exc: BaseException, step: str, log: FailureLog) -> str:
    """The one line a student reads for a failed step: a HarnessError's problem and fix,
    anything else named by its type (the log holds the rest)."""
    if isinstance(exc, HarnessError):
        text = exc.problem + (f" (fix: {exc.fix})" if exc.fix else "")
    else:
        message = plain(str(exc))
        message = message if len(message) <= QUOTED else message[: QUOTED - 3] + "..."
        text = (
            f"the harness could not {step} it ({type(exc).__name__}: {message}); "
            f"the operator's {log.name} has the details"
        )
    return plain(log.redact(text))


def attempt(
    log: FailureLog,
    who: str,
    step: str,
    fn: Callable[[], T],
    fail: Callable[[str], None],
) -> T | None:
    """``fn()``, or None after telling ``fail`` the reason it raised (logged when it is
    not a refusal the harness wrote). KeyboardInterrupt and SystemExit still stop the batch:
    the instructor asked for it."""
    try:
        return fn()
    except HarnessError as exc:
        fail(reason_of(exc, step, log))
    except Exception as exc:  # noqa: BLE001 - the barrier: anything is this hand-in's failure
        log.write(who, step, exc)
        fail(reason_of(exc, step, log))
    return None
