"""The results store's tables, the form its rows are written in, and its migrations.

``SCHEMA_VERSION`` says how a task row was written: 1 kept the model's facts inside the
scores JSON (``harness.results.records`` reads such rows into the current form); 2 keeps
them in columns of their own; 3 stores a failed task's kind (``FailureKind``) in its own
column, and opening an older store gives its failed rows theirs (``add_failure_kinds``). A store written by an older release gains the columns added
since (``ADDED``) when it is opened, and a store from before replicates were a dimension
has its tasks copied into a table keyed by replicate too.
"""

from __future__ import annotations

import sqlite3

from harness.errors import FailureKind

#: The form rows are written in (see the module docstring).
SCHEMA_VERSION = 3
#: The form of `harness results --json`'s objects: each carries this, its run and the run's
#: zoo hash beside the score's own fields.
RESULTS_JSON_VERSION = 1

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
    failure TEXT,
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
    counterpart_asr REAL,
    PRIMARY KEY (run_id, attack, instance)
);
"""

#: Columns added after the first release, for stores written before them: the model facts
#: of schema version 2; then each task's time budget and the commands that wrote a run
#: (nullable or defaulted, so older rows read as they are).
ADDED = {
    "tasks": {
        "poisoned": "INTEGER",
        "role": "TEXT",
        "dataset": "TEXT",
        "attack": "TEXT",
        "targets": "TEXT NOT NULL DEFAULT '[]'",
        "schema_version": "INTEGER NOT NULL DEFAULT 1",
        "budget": "REAL",
        "failure": "TEXT",
    },
    "runs": {"commands": "TEXT NOT NULL DEFAULT '[]'"},
    "attack_instances": {"counterpart_asr": "REAL"},
}

#: The tasks table's columns, in the order of SCHEMA (records are written and read by name).
TASK_COLUMNS = (
    "run_id", "submission", "submission_hash", "oracle", "model_id", "model_hash", "track",
    "status", "outputs", "scores", "error", "stderr_tail", "seconds", "isolation",
    "harness_version", "finished", "poisoned", "role", "dataset", "attack", "targets",
    "schema_version", "budget", "seed", "failure",
)  # fmt: skip
COLUMNS = ", ".join(TASK_COLUMNS)
#: The attack_instances table's columns as ``AttackInstance`` holds them (``finished``, the
#: time a row was written, is the store's own).
INSTANCE_COLUMNS = (
    "run_id", "attack", "attack_hash", "instance", "status", "error", "stderr_tail",
    "model_id", "counterpart_id", "ca", "counterpart_ca", "asr", "labels_changed",
    "images_changed", "seconds", "counterpart_asr",
)  # fmt: skip


def add_columns(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """The (table, column, type) a store written by an older version lacks."""
    missing = []
    for table, columns in ADDED.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing += [(table, n, kind) for n, kind in columns.items() if n not in have]
    return missing


def needs_seed_key(conn: sqlite3.Connection) -> bool:
    """Whether the store's tasks predate replicates (keyed without a ``seed``)."""
    return "seed" not in {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}


def add_seed_key(c: sqlite3.Connection) -> None:
    """Copy the tasks into a table keyed by replicate too, each as replicate 0 (SQLite
    cannot change a table's primary key in place); run inside one transaction."""
    create = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS tasks") :]
    create = create[: create.index(");") + 2]
    old = COLUMNS.removesuffix(", seed, failure")
    c.execute("ALTER TABLE tasks RENAME TO tasks_before_seeds")
    c.execute(create)
    c.execute(f"INSERT INTO tasks ({old}, seed) SELECT {old}, 0 FROM tasks_before_seeds")
    c.execute("DROP TABLE tasks_before_seeds")


#: How a row written before failures had a kind of their own said it, in its error: the
#: one place the harness reads an error's text, to migrate those rows once.
_LEGACY_KINDS = (
    ("wall-clock limit of", FailureKind.TIMEOUT),
    ("memory limit of", FailureKind.MEMORY),
    ("(CPU-time limit)", FailureKind.CPU_TIME),
    ("output limit of", FailureKind.LIMIT),
    ("scratch disk limit of", FailureKind.LIMIT),
    ("protocol violation", FailureKind.PROTOCOL),
    ("invalid output", FailureKind.INVALID_OUTPUT),
)


def legacy_failure(error: str | None) -> FailureKind:
    """The kind of a failure stored before version 3, from its error's text."""
    text = error or ""
    return next((kind for key, kind in _LEGACY_KINDS if key in text), FailureKind.CRASH)


def add_failure_kinds(c: sqlite3.Connection) -> int:
    """Give every failed task written before version 3 its kind; how many were given one
    (run inside one transaction)."""
    rows = c.execute(
        "SELECT rowid, error FROM tasks WHERE status = 'failed' AND failure IS NULL "
        "AND schema_version < 3"
    ).fetchall()
    c.executemany(
        "UPDATE tasks SET failure = ? WHERE rowid = ?",
        [(legacy_failure(error).value, rowid) for rowid, error in rows],
    )
    return len(rows)
