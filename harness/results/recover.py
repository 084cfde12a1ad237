"""A damaged results store: how it is recognised, and how what is readable is saved.

SQLite in WAL mode survives a killed process and a full disk on its own (a transaction is
in the file whole or not at all); what it cannot survive is a file cut short or
overwritten from outside (a copy interrupted, a disk fault). Such a store makes every
command that opens it stop with one line saying so (:class:`StoreDamaged`), and
`harness store recover` copies every row still readable into a fresh store, keeps the
damaged file beside it, and leaves the rest to a rerun of the same commands, which does
only the tasks that are missing.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.results.store import ResultsStore

#: Tables copied by a recovery, in an order that keeps references valid.
TABLES = ("runs", "tasks", "figures", "attack_instances")
#: Rows a recovery reads at once; a range that hits a damaged page is split down to rows.
CHUNK = 256


def check(path: Path) -> list[str]:
    """SQLite's own consistency check of the store: its complaints (none when sound)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    found = [str(r[0]) for r in rows]
    return [] if found == ["ok"] else found


@dataclass
class Recovery:
    kept: Path  # where the damaged file now is
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows recovered
    lost_ranges: int = 0  # rowid ranges that could not be read


def recover(path: Path) -> Recovery:
    """Move the damaged store aside and write a fresh one at ``path`` holding every row
    that can still be read from it."""

    if not path.is_file():
        raise HarnessError("no results store here", path=path, fix="check --db")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(kept)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(kept.with_name(kept.name + suffix))
    fresh = ResultsStore(path)
    report = Recovery(kept)
    try:
        source = sqlite3.connect(f"file:{kept}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return report
    try:
        for table in TABLES:
            report.rows[table] = _copy_table(source, fresh.conn, table, report)
    finally:
        source.close()
        fresh.close()
    return report


def _copy_table(
    source: sqlite3.Connection, dest: sqlite3.Connection, table: str, report: Recovery
) -> int:
    try:
        have = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
        top = source.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        report.lost_ranges += 1
        return 0
    wanted = {r[1] for r in dest.execute(f"PRAGMA table_info({table})")}
    columns = [c for c in have if c in wanted]
    if not columns:
        return 0
    names = ", ".join(columns)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    copied = 0
    stack = [(lo, min(lo + CHUNK - 1, top)) for lo in range(1, top + 1, CHUNK)]
    while stack:
        lo, hi = stack.pop()
        try:
            rows = source.execute(
                f"SELECT {names} FROM {table} WHERE rowid BETWEEN ? AND ?", (lo, hi)
            ).fetchall()
        except sqlite3.DatabaseError:
            if lo == hi:
                report.lost_ranges += 1
            else:
                mid = (lo + hi) // 2
                stack += [(lo, mid), (mid + 1, hi)]
            continue
        dest.execute("BEGIN IMMEDIATE")
        dest.executemany(insert, rows)
        dest.execute("COMMIT")
        copied += len(rows)
    return copied
