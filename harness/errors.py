"""Errors a user can cause: each renders as one line naming the file, the problem and the fix."""

from __future__ import annotations

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
