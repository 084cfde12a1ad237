"""Errors a user can cause: each renders as one line naming the file, the problem and the fix."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class HarnessError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero."""

    def __init__(self, problem: str, *, fix: str = "", path: str | Path | None = None) -> None:
        self.problem = problem
        self.fix = fix
        self.path = str(path) if path is not None else None
        super().__init__(self.line())

    def __reduce__(self) -> tuple:
        # Keep file, problem and fix apart when the error crosses from a cluster worker.
        return (_rebuild, (type(self), self.problem, self.fix, self.path))

    def line(self) -> str:
        head = f"{self.path}: " if self.path else ""
        tail = f" (fix: {self.fix})" if self.fix else ""
        return f"{head}{self.problem}{tail}"


def _rebuild(cls: type[HarnessError], problem: str, fix: str, path: str | None) -> HarnessError:
    return cls(problem, fix=fix, path=path)


class SpecError(HarnessError):
    """A zoo spec or submission.toml is malformed."""


class DataError(HarnessError):
    """A data set file is missing, corrupt or of the wrong shape."""


class ZooError(HarnessError):
    """The zoo is not built, an entry is unknown, or a build failed its floor."""


class FailureKind(StrEnum):
    """Why a task failed, decided where the failure happened and stored in a column of its
    own (views, retries and grading read it; none of them parses an error's text)."""

    TIMEOUT = "timeout"  # its wall-clock limit
    MEMORY = "memory"  # its memory limit (the cgroup's OOM killer)
    CPU_TIME = "cpu-time"  # its CPU-time limit (SIGXCPU)
    LIMIT = "limit"  # another sandbox limit: output, scratch disk
    PROTOCOL = "protocol"  # it broke the worker's pipe protocol or sent what cannot be read
    INVALID_OUTPUT = "invalid-output"  # its reply failed the track's checks
    CRASH = "crash"  # it raised, or its worker died, or could not start
    SETUP = "setup"  # its learned detector's configure step failed, so it could not run

    @property
    def label(self) -> str:
        """How reports name the kind."""
        return _LABELS[self]


_LABELS = {
    FailureKind.TIMEOUT: "timeout",
    FailureKind.MEMORY: "memory limit",
    FailureKind.CPU_TIME: "CPU-time limit",
    FailureKind.LIMIT: "output or disk limit",
    FailureKind.PROTOCOL: "protocol violation",
    FailureKind.INVALID_OUTPUT: "invalid output",
    FailureKind.CRASH: "crash or other error",
    FailureKind.SETUP: "configure step failed",
}
