"""The optional class roster (CSV): ``id`` and, when known, ``name``, ``extension_days``
(late days granted) and ``submitted`` (the hand-in time, ISO 8601; without it a hand-in's
time is its file's modification time).

A roster is untrusted text (an export from a course system, where students may set their
own names). A roster whose shape is wrong (no id column, an unknown column, an id twice or
one that cannot name a folder) stops the grading with one line; a row whose extension or
time is not a number of days or a date within bounds costs that student alone: their
``Student.error`` says why, and their grade carries it until the roster is fixed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.submission.files import read_bounded

COLUMNS = ("id", "name", "extension_days", "submitted")
#: What a student id may be, matched whole (``fullmatch``): it names the student's folder
#: of the grading run.
STUDENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}")
#: The most late days a roster may grant, and the span of hand-in times it may give.
MAX_EXTENSION_DAYS = 365
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(2999, 12, 31, tzinfo=dt.timezone.utc)
MAX_ROSTER_BYTES = 16 << 20


def is_student_id(text: str) -> bool:
    """Whether ``text`` is a student id, whole (a trailing newline is not)."""
    return STUDENT_RE.fullmatch(text) is not None


class RosterError(HarnessError):
    """A roster that cannot be read as written."""


@dataclass(frozen=True)
class Student:
    id: str
    name: str = ""
    extension_days: float = 0.0
    submitted: dt.datetime | None = None
    #: why this row cannot be used as written (the student's grade says so)
    error: str | None = None


class _RowError(ValueError):
    """A value of one row that cannot be used: that student's problem alone."""


def _time(raw: str, row: int) -> dt.datetime | None:
    """A row's hand-in time (UTC when it names no offset), between EARLIEST and LATEST."""
    if not raw.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(raw.strip())
        when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
        if not EARLIEST <= when <= LATEST:
            raise ValueError
    except (ValueError, OverflowError):
        raise _RowError(
            f"roster row {row}: submitted {raw.strip()[:40]!r} is not an ISO date-time from "
            f"{EARLIEST.year} to {LATEST.year} (fix the roster, e.g. 2026-12-01T18:30:00+00:00)"
        ) from None
    return when


def _extension(raw: str, row: int) -> float:
    """A row's extension: a number of days from 0 to MAX_EXTENSION_DAYS."""
    try:
        ext = float(raw)
    except ValueError:
        ext = math.nan
    if not (math.isfinite(ext) and 0 <= ext <= MAX_EXTENSION_DAYS):
        raise _RowError(
            f"roster row {row}: extension_days {raw[:40]!r} is not a number of days from 0 "
            f"to {MAX_EXTENSION_DAYS} (fix the roster, e.g. 2)"
        )
    return ext


def _rows(path: Path) -> list[dict[str, str | None]]:
    """The roster's rows; a file that is not a readable CSV is one RosterError."""
    try:
        text = read_bounded(path, MAX_ROSTER_BYTES).decode("utf-8-sig")
        return list(csv.DictReader(io.StringIO(text, newline="")))
    except FileNotFoundError:
        raise RosterError(
            "no such roster file", path=path, fix="give --roster a CSV path"
        ) from None
    except OSError as exc:
        raise RosterError(
            f"cannot read the roster ({exc.strerror})", path=path, fix="give a CSV file"
        ) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RosterError(
            f"cannot read the roster ({exc})", path=path, fix="save it as CSV in UTF-8"
        ) from None


def load_roster(path: Path) -> dict[str, Student]:
    """Student id -> Student."""
    rows = _rows(path)
    header = set(rows[0]) if rows else set()
    if "id" not in header:
        raise RosterError(
            "the roster has no id column", path=path, fix=f"columns: {', '.join(COLUMNS)}"
        )
    unknown = sorted(header - set(COLUMNS) - {None})  # type: ignore[arg-type]
    if unknown:
        raise RosterError(
            f"unknown column(s) {', '.join(unknown)}",
            path=path,
            fix=f"columns: {', '.join(COLUMNS)}",
        )
    out: dict[str, Student] = {}
    for i, r in enumerate(rows, start=2):
        sid = (r.get("id") or "").strip()
        if not sid:
            raise RosterError(f"row {i} has no id", path=path, fix="fill in every id")
        if not is_student_id(sid):
            raise RosterError(
                f"row {i}: id {sid!r} has characters a folder name cannot",
                path=path,
                fix="use letters, digits and . _ - @ +",
            )
        if sid in out:
            raise RosterError(
                f"row {i}: id {sid!r} appears twice", path=path, fix="list each student once"
            )
        name = (r.get("name") or "").strip()
        try:
            ext = _extension((r.get("extension_days") or "0").strip() or "0", i)
            when = _time(r.get("submitted") or "", i)
        except _RowError as exc:
            out[sid] = Student(sid, name, error=str(exc))
            continue
        out[sid] = Student(sid, name, ext, when)
    return out
