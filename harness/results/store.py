"""The results store: SQLite in WAL mode; one row per task, each written once, atomically.

A task counts as done when a row exists for the same submission content hash and model
content hash, so `harness run` resumes after any interruption and reruns only what
changed. The rows are typed in ``harness.results.records``, the tables in
``harness.results.schema``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import FailureKind, HarnessError
from harness.results.damage import damaged, is_damage
from harness.results.records import AttackInstance, TaskRecord, task_record, task_row
from harness.results.schema import (
    COLUMNS,
    INSTANCE_COLUMNS,
    SCHEMA,
    TASK_COLUMNS,
    add_columns,
    add_failure_kinds,
    add_seed_key,
    needs_seed_key,
)

#: Free space under which a store's "disk I/O error" is taken for a full disk.
LOW_SPACE_BYTES = 1 << 20


class ResultsStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            self._add_columns()
            self._add_seed_key()
            self._add_failure_kinds()
            problems = self.conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if is_damage(exc):
                raise damaged(self.path, exc) from None
            raise self._full(exc) from None
        if [r[0] for r in problems] != ["ok"]:
            self.conn.close()
            raise damaged(self.path, RuntimeError(str(problems[0][0])[:200]))

    def _add_columns(self) -> None:
        """Bring a store written by an older version to its columns (rows keep theirs)."""
        missing = add_columns(self.conn)
        if missing:
            with self._tx() as c:
                for table, name, kind in missing:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _add_seed_key(self) -> None:
        """A store written before seeds were a dimension keys its tasks without one: one
        transaction makes the old table the new, whole (``schema.add_seed_key``)."""
        if needs_seed_key(self.conn):
            with self._tx() as c:
                add_seed_key(c)

    def _add_failure_kinds(self) -> None:
        """Failed tasks of a store written before version 3 get their kind, once."""
        if self.conn.execute(
            "SELECT 1 FROM tasks WHERE status = 'failed' AND failure IS NULL "
            "AND schema_version < 3 LIMIT 1"
        ).fetchone():
            with self._tx() as c:
                add_failure_kinds(c)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """Hold run ``run_id`` of this store for one coordinator: a second `harness run`
        (or reproduce, grade, attack run) of the same run would plan the same missing
        tasks and run each twice. Refused at once, in one line, while another holds it;
        the kernel drops the lock when its holder dies, so a killed run leaves none."""
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
        path = self.path.parent / f".{self.path.name}.run-{digest}.lock"
        with open(path, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HarnessError(
                    f"another process is running run {run_id!r} of this results store",
                    fix="wait for it to finish (or stop it); the same command then resumes "
                    "the run, or choose another --run-id",
                    path=self.path,
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it stored, or (on any error, a full disk included)
        none of it."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:  # SQLite ends some failed ones itself (SQLITE_FULL)
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise self._full(exc) from None

    def _full(self, exc: sqlite3.Error) -> Exception:
        """A full disk as the OSError it is (with the store's path); other errors as they
        are. SQLite says "database or disk is full" when a write finds no room, but only
        "disk I/O error" when it cannot create its shared-memory file: then the free space
        left on the store's disk tells."""
        text = str(exc)
        if "full" not in text and not ("I/O error" in text and self._disk_nearly_full()):
            return exc
        return OSError(errno.ENOSPC, f"{text}: no space left", str(self.path))

    def _disk_nearly_full(self) -> bool:
        try:
            return shutil.disk_usage(self.path.parent).free < LOW_SPACE_BYTES
        except OSError:
            return False

    def ensure_run(
        self, run_id: str, profile: str, zoo_hash: str, command: str | None = None
    ) -> None:
        """Create the run, or update its zoo hash; ``command`` (what the user typed) joins
        the run's list of commands when it is not there yet."""
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT INTO runs (run_id, profile, zoo_hash, created, updated, "
                "harness_version) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE "
                "SET zoo_hash = excluded.zoo_hash, updated = excluded.updated",
                (run_id, profile, zoo_hash, now, now, __version__),
            )
            if command:
                row = c.execute("SELECT commands FROM runs WHERE run_id=?", (run_id,)).fetchone()
                commands = json.loads(row[0])
                if command not in commands:
                    c.execute(
                        "UPDATE runs SET commands=? WHERE run_id=?",
                        (json.dumps([*commands, command]), run_id),
                    )

    def save_figures(self, run_id: str, figures: list[dict[str, Any]], command: str) -> None:
        """Keep a reproduction's figures (name, source, paper, measured, holds) with the
        run, replacing earlier measurements of the same figures."""
        now = time.time()
        with self._tx() as c:
            for f in figures:
                holds = None if f["holds"] is None else int(bool(f["holds"]))
                c.execute(
                    "INSERT OR REPLACE INTO figures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        f["name"],
                        f["source"],
                        f["paper"],
                        f["measured"],
                        holds,
                        command,
                        now,
                    ),
                )

    def figures(self, run_id: str) -> list[dict[str, Any]]:
        """The reproduction figures measured in a run, in the order they were written."""
        cur = self.conn.execute(
            "SELECT name, source, paper, measured, holds, command FROM figures "
            "WHERE run_id=? ORDER BY written, rowid",
            (run_id,),
        )
        rows = [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur]
        for r in rows:
            r["holds"] = None if r["holds"] is None else bool(r["holds"])
        return rows

    def write_attack_instance(self, rec: AttackInstance) -> None:
        """Keep one attack hand-in's instance: what its poisoning and training gave (a
        rerun of the same hand-in replaces it)."""
        values = [getattr(rec, name) for name in INSTANCE_COLUMNS]
        names = ", ".join((*INSTANCE_COLUMNS, "finished"))
        with self._tx() as c:
            c.execute(
                f"INSERT OR REPLACE INTO attack_instances ({names}) "
                f"VALUES ({', '.join('?' * (len(values) + 1))})",
                (*values, time.time()),
            )

    def attack_instances(self, run_id: str) -> list[AttackInstance]:
        """Every attack instance of a run, by hand-in and instance."""
        cur = self.conn.execute(
            f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM attack_instances WHERE run_id=? "
            "ORDER BY attack, instance",
            (run_id,),
        )
        return [AttackInstance(*row) for row in cur]

    def done(
        self,
        run_id: str,
        submission: str,
        submission_hash: str,
        model_id: str,
        model_hash: str,
        track: str,
        replicate: int = 0,
        *,
        retry_timeouts: bool = False,
    ) -> bool:
        """Whether this task is stored; with ``retry_timeouts`` a task stored as failed by
        its wall-clock limit counts as not done (a busy machine's timeouts, run again)."""
        timed_out = "AND failure IS NOT ?" if retry_timeouts else "AND ? IS NULL"
        keys = (run_id, submission, submission_hash, model_id, model_hash, track, replicate)
        row = self.conn.execute(
            "SELECT 1 FROM tasks WHERE run_id=? AND submission=? AND submission_hash=? AND "
            f"model_id=? AND model_hash=? AND track=? AND seed=? {timed_out}",
            (*keys, FailureKind.TIMEOUT.value if retry_timeouts else None),
        ).fetchone()
        return row is not None

    def write_task(self, rec: TaskRecord) -> None:
        """Insert or replace one task in a single transaction; ``UnstorableTask`` (and
        nothing written) when its outputs or scores are not JSON the store can write."""
        row = {**task_row(rec), "harness_version": __version__, "finished": time.time()}
        with self._tx() as c:
            c.execute(
                f"INSERT OR REPLACE INTO tasks ({COLUMNS}) "
                f"VALUES ({', '.join(':' + name for name in TASK_COLUMNS)})",
                row,
            )
            c.execute("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), rec.run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run, the latest updated first; ``commands`` is a list."""
        cur = self.conn.execute("SELECT * FROM runs ORDER BY updated DESC")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        for r in rows:
            r["commands"] = json.loads(r["commands"])
        return rows

    def latest_run(self) -> str | None:
        runs = self.runs()
        return runs[0]["run_id"] if runs else None

    def tasks(self, run_id: str, replicate: int | None = None) -> list[TaskRecord]:
        """A run's tasks: every replicate, or only replicate ``replicate``."""
        cur = self.conn.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE run_id=? AND (? IS NULL OR seed=?) "
            "ORDER BY submission, track, model_id, seed",
            (run_id, replicate, replicate),
        )
        names = [d[0] for d in cur.description]
        return [task_record(dict(zip(names, row, strict=True))) for row in cur.fetchall()]
