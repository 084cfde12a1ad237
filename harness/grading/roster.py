"""The optional class roster (CSV): ``id`` and, when known, ``name``, ``extension_days``
(late days granted) and ``submitted`` (the hand-in time, ISO 8601; without it a hand-in's
time is its file's modification time)."""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

COLUMNS = ("id", "name", "extension_days", "submitted")
#: What a student id may be: it names the student's folder of the grading run.
STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")


class RosterError(HarnessError):
    """A roster that cannot be read as written."""


@dataclass(frozen=True)
class Student:
    id: str
    name: str = ""
    extension_days: float = 0.0
    submitted: dt.datetime | None = None


def _time(raw: str, path: Path, row: int) -> dt.datetime | None:
    if not raw.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise RosterError(
            f"row {row}: submitted {raw!r} is not an ISO date-time",
            path=path,
            fix="e.g. 2026-12-01T18:30:00+00:00",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def load_roster(path: Path) -> dict[str, Student]:
    """Student id -> Student."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
            header = set(rows[0]) if rows else set()
    except FileNotFoundError:
        raise RosterError(
            "no such roster file", path=path, fix="give --roster a CSV path"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RosterError(
            f"cannot read the roster ({exc})", path=path, fix="save it as CSV"
        ) from None
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
        if not STUDENT_RE.match(sid):
            raise RosterError(
                f"row {i}: id {sid!r} has characters a folder name cannot",
                path=path,
                fix="use letters, digits and . _ - @ +",
            )
        if sid in out:
            raise RosterError(
                f"row {i}: id {sid!r} appears twice", path=path, fix="list each student once"
            )
        raw_ext = (r.get("extension_days") or "0").strip() or "0"
        try:
            ext = float(raw_ext)
        except ValueError:
            ext = math.nan
        if not math.isfinite(ext) or ext < 0:
            raise RosterError(
                f"row {i}: extension_days {raw_ext!r} is not a number of days",
                path=path,
                fix="e.g. 2",
            )
        out[sid] = Student(
            sid, (r.get("name") or "").strip(), ext, _time(r.get("submitted") or "", path, i)
        )
    return out
