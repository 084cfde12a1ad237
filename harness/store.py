"""The results store: SQLite in WAL mode; one row per task, each written once, atomically.

A task is (run, submission, model, track, seed). It counts as done when a row exists for
the same submission content hash and model content hash, so `harness run` resumes after
any interruption and reruns only what changed. ``seed`` is the task's replicate: 0 for
every run, 1 .. K-1 for the extra seeds of ``harness run --seeds K`` (each replicate draws
its own task seed, so a defense's randomness is measured, not hidden).

Each row carries the facts about its model that the views need (``ModelFacts``: backdoored
or not, its role, data set, attack, targets) in columns of their own, and the track's
outcome (its per-model scores) as JSON. ``schema_version`` says how a row was written:
1 kept the facts inside the scores JSON; such rows are read into the current form.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError
from harness.sandbox.limits import WALL_CLOCK_EXCEEDED
from harness.store_recover import damaged, is_damage

#: Free space under which a store's "disk I/O error" is taken for a full disk.
LOW_SPACE_BYTES = 1 << 20

#: The form rows are written in (see the module docstring).
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    zoo_hash TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    harness_version TEXT NOT NULL,
    commands TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    submission TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    oracle INTEGER NOT NULL DEFAULT 0,
    model_id TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    track TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    outputs TEXT NOT NULL,
    scores TEXT NOT NULL,
    error TEXT,
    stderr_tail TEXT,
    seconds REAL,
    isolation TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    finished REAL NOT NULL,
    poisoned INTEGER,
    role TEXT,
    dataset TEXT,
    attack TEXT,
    targets TEXT NOT NULL DEFAULT '[]',
    schema_version INTEGER NOT NULL DEFAULT 1,
    budget REAL,
    seed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, submission, model_id, track, seed)
);
CREATE TABLE IF NOT EXISTS figures (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    paper TEXT NOT NULL,
    measured TEXT NOT NULL,
    holds INTEGER,
    command TEXT NOT NULL,
    written REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS attack_instances (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    attack TEXT NOT NULL,
    attack_hash TEXT NOT NULL,
    instance INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'invalid', 'failed')),
    error TEXT,
    stderr_tail TEXT,
    model_id TEXT,
    counterpart_id TEXT,
    ca REAL,
    counterpart_ca REAL,
    asr REAL,
    labels_changed REAL,
    images_changed REAL,
    seconds REAL,
    finished REAL NOT NULL,
    PRIMARY KEY (run_id, attack, instance)
);
"""

#: Columns added after the first release, for stores written before them: the model facts
#: of schema version 2; then each task's time budget and the commands that wrote a run
#: (nullable or defaulted, so older rows read as they are).
_ADDED = {
    "tasks": {
        "poisoned": "INTEGER",
        "role": "TEXT",
        "dataset": "TEXT",
        "attack": "TEXT",
        "targets": "TEXT NOT NULL DEFAULT '[]'",
        "schema_version": "INTEGER NOT NULL DEFAULT 1",
        "budget": "REAL",
    },
    "runs": {"commands": "TEXT NOT NULL DEFAULT '[]'"},
}

_COLUMNS = (
    "run_id, submission, submission_hash, oracle, model_id, model_hash, track, status, "
    "outputs, scores, error, stderr_tail, seconds, isolation, harness_version, finished, "
    "poisoned, role, dataset, attack, targets, schema_version, budget, seed"
)


@dataclass(frozen=True)
class ModelFacts:
    """What the harness knew about a task's model when it ran (its truth and card)."""

    poisoned: bool | None = None  # None: truth unknown (an imported model)
    role: str | None = None  # backdoored, counterpart, clean; None when unknown
    dataset: str | None = None
    attack: str | None = None
    targets: tuple[int, ...] = ()


@dataclass(frozen=True)
class TaskRecord:
    run_id: str
    submission: str
    submission_hash: str
    oracle: bool
    model_id: str
    model_hash: str
    track: str
    status: str
    outputs: dict[str, Any]
    scores: dict[str, Any]
    error: str | None
    stderr_tail: str | None
    seconds: float | None
    isolation: str
    facts: ModelFacts = field(default_factory=ModelFacts)
    schema_version: int = SCHEMA_VERSION
    budget: float | None = None  # the task's wall-clock limit in seconds, when recorded
    seed: int = 0  # the replicate (``harness run --seeds K``: 0 .. K-1)


def _facts_of_version_1(scores: dict[str, Any]) -> tuple[ModelFacts, dict[str, Any]]:
    """A version-1 row kept ``poisoned`` and ``dataset`` among its scores: move them out.
    Its role, attack and targets were not stored."""
    scores = dict(scores)
    poisoned, dataset = scores.pop("poisoned", None), scores.pop("dataset", None)
    return ModelFacts(poisoned=poisoned, dataset=dataset), scores


@dataclass(frozen=True)
class AttackInstance:
    """One instance of an attack hand-in (the attack track): its poisoned model and clean
    counterpart, or why there are none. ``status`` "invalid": the poisoned set broke the
    contract or its limits; "failed": the hand-in crashed or ran out of time."""

    run_id: str
    attack: str
    attack_hash: str
    instance: int
    status: str
    error: str | None = None
    stderr_tail: str | None = None
    model_id: str | None = None
    counterpart_id: str | None = None
    ca: float | None = None
    counterpart_ca: float | None = None
    asr: float | None = None
    labels_changed: float | None = None
    images_changed: float | None = None
    seconds: float | None = None


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
        missing = []
        for table, columns in _ADDED.items():
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            missing += [(table, n, kind) for n, kind in columns.items() if n not in have]
        if missing:
            with self._tx() as c:
                for table, name, kind in missing:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _add_seed_key(self) -> None:
        """A store written before seeds were a dimension keys its tasks without one: copy
        them into a table keyed by seed too, each as replicate 0 (SQLite cannot change a
        table's primary key in place). One transaction: the old table or the new, whole."""
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(tasks)")}
        if "seed" in have:
            return
        create = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS tasks") :]
        create = create[: create.index(");") + 2]
        old = _COLUMNS.removesuffix(", seed")
        with self._tx() as c:
            c.execute("ALTER TABLE tasks RENAME TO tasks_before_seeds")
            c.execute(create)
            c.execute(f"INSERT INTO tasks ({old}, seed) SELECT {old}, 0 FROM tasks_before_seeds")
            c.execute("DROP TABLE tasks_before_seeds")

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
        values = (
            rec.run_id, rec.attack, rec.attack_hash, rec.instance, rec.status, rec.error,
            rec.stderr_tail, rec.model_id, rec.counterpart_id, rec.ca, rec.counterpart_ca,
            rec.asr, rec.labels_changed, rec.images_changed, rec.seconds, time.time(),
        )  # fmt: skip
        with self._tx() as c:
            c.execute(
                f"INSERT OR REPLACE INTO attack_instances VALUES ({', '.join('?' * 16)})",
                values,
            )

    def attack_instances(self, run_id: str) -> list[AttackInstance]:
        """Every attack instance of a run, by hand-in and instance."""
        cur = self.conn.execute(
            "SELECT run_id, attack, attack_hash, instance, status, error, stderr_tail, "
            "model_id, counterpart_id, ca, counterpart_ca, asr, labels_changed, "
            "images_changed, seconds FROM attack_instances WHERE run_id=? "
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
        seed: int = 0,
        *,
        retry_timeouts: bool = False,
    ) -> bool:
        """Whether this task is stored; with ``retry_timeouts`` a task stored as failed by
        its wall-clock limit counts as not done (a busy machine's timeouts, run again)."""
        timed_out = "AND NOT (status = 'failed' AND error LIKE ?)" if retry_timeouts else ""
        keys = (run_id, submission, submission_hash, model_id, model_hash, track, seed)
        row = self.conn.execute(
            "SELECT 1 FROM tasks WHERE run_id=? AND submission=? AND submission_hash=? AND "
            f"model_id=? AND model_hash=? AND track=? AND seed=? {timed_out}",
            (*keys, f"{WALL_CLOCK_EXCEEDED}%") if retry_timeouts else keys,
        ).fetchone()
        return row is not None

    def write_task(self, rec: TaskRecord) -> None:
        """Insert or replace one task in a single transaction; ``UnstorableTask`` (and
        nothing written) when its outputs or scores are not JSON the store can write."""
        outputs, scores = _task_json(rec.outputs, "outputs"), _task_json(rec.scores, "scores")
        with self._tx() as c:
            c.execute(
                f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES ({', '.join('?' * 24)})",
                (
                    rec.run_id,
                    rec.submission,
                    rec.submission_hash,
                    int(rec.oracle),
                    rec.model_id,
                    rec.model_hash,
                    rec.track,
                    rec.status,
                    outputs,
                    scores,
                    rec.error,
                    rec.stderr_tail,
                    rec.seconds,
                    rec.isolation,
                    __version__,
                    time.time(),
                    None if rec.facts.poisoned is None else int(rec.facts.poisoned),
                    rec.facts.role,
                    rec.facts.dataset,
                    rec.facts.attack,
                    json.dumps(list(rec.facts.targets)),
                    SCHEMA_VERSION,
                    rec.budget,
                    rec.seed,
                ),
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

    def tasks(self, run_id: str, seed: int | None = None) -> list[TaskRecord]:
        """A run's tasks: every replicate, or only seed ``seed``."""
        rows = self.conn.execute(
            "SELECT run_id, submission, submission_hash, oracle, model_id, model_hash, track, "
            "status, outputs, scores, error, stderr_tail, seconds, isolation, poisoned, role, "
            "dataset, attack, targets, schema_version, budget, seed FROM tasks "
            "WHERE run_id=? AND (? IS NULL OR seed=?) ORDER BY submission, track, model_id, seed",
            (run_id, seed, seed),
        ).fetchall()
        return [_record(row) for row in rows]


class UnstorableTask(ValueError):
    """A task whose outputs or scores JSON cannot write (nested too deeply for the encoder,
    or not JSON at all): the submission's doing, so the runner stores the task as failed."""


def _task_json(value: dict[str, Any], what: str) -> str:
    """``value`` as the JSON the store keeps, or ``UnstorableTask`` saying why not."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UnstorableTask(f"its {what} cannot be stored as JSON ({reason})") from None


def _record(r: tuple[Any, ...]) -> TaskRecord:
    scores, version = json.loads(r[9]), int(r[19])
    if version == 1:
        facts, scores = _facts_of_version_1(scores)
    else:
        poisoned = None if r[14] is None else bool(r[14])
        facts = ModelFacts(poisoned, r[15], r[16], r[17], tuple(json.loads(r[18])))
    return TaskRecord(
        r[0],
        r[1],
        r[2],
        bool(r[3]),
        r[4],
        r[5],
        r[6],
        r[7],
        json.loads(r[8]),
        scores,
        r[10],
        r[11],
        r[12],
        r[13],
        facts,
        version,
        r[20],
        int(r[21]),
    )
