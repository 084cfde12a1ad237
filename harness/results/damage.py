"""A damaged results store, recognised: a file cut short or overwritten from outside.

SQLite in WAL mode survives a killed process and a full disk on its own (a transaction is
in the file whole or not at all); what it cannot survive is a file cut short or
overwritten from outside (a copy interrupted, a disk fault). Such a store makes every
command that opens it stop with one line saying so (:class:`StoreDamaged`);
``harness.results.recover`` saves what is still readable.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness.errors import HarnessError


class StoreDamaged(HarnessError):
    """The results store's file is not a readable SQLite database."""


def damaged(path: Path, exc: BaseException) -> StoreDamaged:
    return StoreDamaged(
        f"the results store is damaged ({exc})",
        path=path,
        fix=f"`harness store recover --db {path}` keeps every readable row (the damaged "
        "file is kept beside it), then rerun your command: it redoes only what is missing",
    )


def is_damage(exc: BaseException) -> bool:
    """Is this SQLite error a damaged file (rather than a busy, locked or full one)?"""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.OperationalError | sqlite3.IntegrityError | sqlite3.ProgrammingError
    )
