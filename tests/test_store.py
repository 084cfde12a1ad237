"""The SQLite results store, on fabricated task records (no submission is run)."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from conftest import run_cli

from harness import __version__
from harness.errors import FailureKind
from harness.results import SCHEMA_VERSION, ModelFacts, ResultsStore, TaskRecord


def record(**changes) -> TaskRecord:
    base = TaskRecord(
        run_id="r1",
        submission="null",
        submission_hash="s" * 16,
        oracle=False,
        model_id="mnist-badnets-1",
        model_hash="m" * 16,
        track="detect",
        status="ok",
        outputs={"score": 0.25, "target_labels": [3]},
        scores={"score": 0.25, "nested": {"k": [1, 2]}},
        error=None,
        stderr_tail=None,
        seconds=1.5,
        isolation="bwrap",
        facts=ModelFacts(True, "backdoored", "mnist", "badnets_patch", (0,)),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(tmp_path):
    s = ResultsStore(tmp_path / "sub" / "results.sqlite")  # the folder is created
    s.ensure_run("r1", "tiny", "zoohash1")
    yield s
    s.close()


def test_a_task_reads_back_exactly_as_written(store):
    rec = record(oracle=True, status="failed", error="boom", stderr_tail="trace", seconds=None)
    rec = dataclasses.replace(rec, budget=60.0)
    store.write_task(rec)
    assert store.tasks("r1") == [rec]
    assert store.tasks("other-run") == []


def test_done_needs_the_same_submission_and_model_content(store):
    rec = record()
    key = ("r1", rec.submission, rec.submission_hash, rec.model_id, rec.model_hash, rec.track)
    assert not store.done(*key)
    store.write_task(rec)
    assert store.done(*key)
    run, sub, sub_hash, model, model_hash, track = key
    assert not store.done(run, sub, "edited-code", model, model_hash, track)
    assert not store.done(run, sub, sub_hash, model, "rebuilt-model", track)
    assert not store.done(run, sub, sub_hash, model, model_hash, "repair")
    assert not store.done("r2", sub, sub_hash, model, model_hash, track)


def test_a_rerun_replaces_its_task_and_never_duplicates_it(store):
    store.write_task(record(status="failed", error="timeout"))
    store.write_task(record(submission_hash="t" * 16, outputs={"score": 0.9}))
    (only,) = store.tasks("r1")
    assert only.status == "ok" and only.error is None
    assert only.submission_hash == "t" * 16 and only.outputs == {"score": 0.9}


def test_tasks_come_back_sorted_by_submission_track_model(store):
    keys = [
        ("b", "detect", "m2"),
        ("a", "repair", "m1"),
        ("a", "detect", "m2"),
        ("a", "detect", "m1"),
    ]
    for sub, track, model in keys:
        store.write_task(record(submission=sub, track=track, model_id=model))
    got = [(t.submission, t.track, t.model_id) for t in store.tasks("r1")]
    assert got == sorted(keys)


def test_a_bad_row_rolls_back_and_leaves_the_store_usable(store):
    with pytest.raises(sqlite3.IntegrityError):
        store.write_task(record(status="maybe"))  # CHECK (status IN ('ok', 'failed'))
    assert store.tasks("r1") == []
    store.write_task(record())
    assert len(store.tasks("r1")) == 1


def test_runs_keep_their_creation_and_follow_the_latest_update(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    assert store.runs() == [] and store.latest_run() is None
    store.ensure_run("first", "tiny", "z1")
    store.ensure_run("second", "tiny", "z1")
    assert store.latest_run() == "second"
    created = {r["run_id"]: r["created"] for r in store.runs()}
    store.ensure_run("first", "other-profile", "z2")  # resuming: new zoo hash, same run
    assert store.latest_run() == "first"
    (first,) = [r for r in store.runs() if r["run_id"] == "first"]
    assert first["zoo_hash"] == "z2" and first["profile"] == "tiny"
    assert first["created"] == created["first"] and first["updated"] >= first["created"]
    assert first["harness_version"] == __version__
    store.write_task(record(run_id="second"))  # a stored task makes its run the latest
    assert store.latest_run() == "second"
    store.close()


def test_tasks_survive_reopening_and_two_writers_share_the_file(tmp_path):
    path = tmp_path / "results.sqlite"
    one, two = ResultsStore(path), ResultsStore(path)
    one.ensure_run("r1", "tiny", "z")
    one.write_task(record(submission="a"))
    two.write_task(record(submission="b"))
    assert [t.submission for t in one.tasks("r1")] == ["a", "b"]
    one.close()
    two.close()
    again = ResultsStore(path)
    assert [t.submission for t in again.tasks("r1")] == ["a", "b"]
    assert again.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_store_diff_names_every_changed_task_and_nothing_else(tmp_path, capsys):
    from harness.results.diff import diff_runs

    same = record()
    a = [same, record(model_id="m2", scores={"der": 0.75})]
    b = [same, record(model_id="m2", scores={"der": 0.7500001})]
    b.append(record(model_id="m3"))
    diffs = diff_runs(a, b)
    assert set(diffs) == {("null", "m2", "detect"), ("null", "m3", "detect")}
    assert "scores.der" in diffs[("null", "m2", "detect")][0]
    assert set(diff_runs(a, b, tolerance=1e-6)) == {("null", "m3", "detect")}
    assert diff_runs(a, a) == {}
    # True and 1 are not the same score; an unmeasured score may be stored as null or left
    # out (schema 1 kept nulls, schema 2 leaves them out); other facts must agree.
    assert diff_runs([record(scores={"x": True})], [record(scores={"x": 1})])
    assert not diff_runs([record(scores={"x": None})], [record(scores={})])
    assert diff_runs([record()], [record(facts=ModelFacts(False, "clean", "mnist"))])
    # The command line: exit 1 and one line per difference; 0 for a store against itself.
    for path, recs in (("a.sqlite", a), ("b.sqlite", b)):
        s = ResultsStore(tmp_path / path)
        s.ensure_run("r1", "tiny", "z")
        for r in recs:
            s.write_task(r)
        s.close()
    a_db, b_db = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    assert run_cli("store", "diff", a_db, a_db).returncode == 0
    assert run_cli("store", "diff", a_db, str(tmp_path / "none.sqlite")).returncode == 2
    # A differing pair: exit 1, a line a task; the failure kind is compared too.
    proc = run_cli("store", "diff", a_db, b_db)
    assert proc.returncode == 1 and "null / m2 / detect: scores.der" in proc.stdout
    assert "2 and 3 tasks compared, 2 differ" in proc.stdout
    assert "2 differ" in proc.stdout and "\x1b" not in proc.stdout
    hostile = ResultsStore(tmp_path / "c.sqlite")
    hostile.ensure_run("r1", "tiny", "z")
    hostile.write_task(record(model_id="\x1b[2J\nFORGED / line"))  # an imported model's id
    hostile.close()
    forged = run_cli("store", "diff", a_db, str(tmp_path / "c.sqlite"))
    assert forged.returncode == 1 and "\x1b" not in forged.stdout
    assert not any(line.startswith("FORGED") for line in forged.stdout.splitlines())
    missing = run_cli("store", "diff", str(tmp_path / "a.sqlite"), str(tmp_path / "x.sqlite"))
    assert missing.returncode == 2 and "no such results store" in missing.stderr
    assert "Traceback" not in missing.stderr
    crashed = record(status="failed", error="boom")
    timed_out = record(status="failed", error="boom", failure=FailureKind.TIMEOUT)
    assert (
        "failure crash != timeout"
        in diff_runs([crashed], [timed_out])[("null", "mnist-badnets-1", "detect")][0]
    )


#: A results store as harness 0.x wrote it before schema version 2: model facts among the
#: scores, no fact columns.
VERSION_1 = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, profile TEXT NOT NULL, zoo_hash TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, harness_version TEXT NOT NULL);
CREATE TABLE tasks (run_id TEXT NOT NULL REFERENCES runs(run_id), submission TEXT NOT NULL,
    submission_hash TEXT NOT NULL, oracle INTEGER NOT NULL DEFAULT 0, model_id TEXT NOT NULL,
    model_hash TEXT NOT NULL, track TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), outputs TEXT NOT NULL,
    scores TEXT NOT NULL, error TEXT, stderr_tail TEXT, seconds REAL, isolation TEXT NOT NULL,
    harness_version TEXT NOT NULL, finished REAL NOT NULL,
    PRIMARY KEY (run_id, submission, model_id, track));
INSERT INTO runs VALUES ('old', 'tiny', 'z', 1.0, 1.0, '0.3.0');
INSERT INTO tasks VALUES ('old', 'null', 'h', 0, 'm1', 'mh', 'repair', 'ok', '{}',
    '{"poisoned": true, "dataset": "mnist", "ca": 0.9, "der": null}', NULL, NULL, 1.0,
    'bwrap', '0.3.0', 1.0);
"""


def test_a_version_1_store_reads_with_its_facts_moved_out_of_the_scores(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_1)
    store = ResultsStore(path)  # adds the fact columns; the old row keeps version 1
    (old,) = store.tasks("old")
    assert old.facts == ModelFacts(poisoned=True, dataset="mnist")
    assert old.scores == {"ca": 0.9, "der": None} and old.schema_version == 1
    assert old.budget is None and store.runs()[0]["commands"] == []
    new = record(run_id="old", model_id="m2", track="repair")
    store.write_task(new)
    assert store.tasks("old") == [old, new] and new.schema_version == SCHEMA_VERSION
    store.close()
    assert ResultsStore(path).tasks("old") == [old, new]  # reopening changes nothing


def test_a_failure_keeps_its_kind_and_only_the_kind_says_timeout(store):
    """The kind is stored as the runner decided it: a retry of timeouts reads the column,
    never the error's text (which a submission's own message can imitate)."""
    key = ("r1", "null", "s" * 16, "mnist-badnets-1", "m" * 16, "detect")
    forged = record(status="failed", error="wall-clock limit of 60 s exceeded (it said so)")
    store.write_task(forged)
    (back,) = store.tasks("r1")
    assert back.failure is FailureKind.CRASH and back == forged
    assert store.done(*key, retry_timeouts=True)
    store.write_task(record(status="failed", error="stopped", failure=FailureKind.TIMEOUT))
    assert store.tasks("r1")[0].failure is FailureKind.TIMEOUT
    assert not store.done(*key, retry_timeouts=True) and store.done(*key)
    store.write_task(record(failure=FailureKind.MEMORY))  # a task that ran has no kind
    assert store.tasks("r1")[0].failure is None


def test_failed_rows_of_an_older_store_get_their_kind_once(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_1)
        for model, error in [
            ("m2", "wall-clock limit of 60 s exceeded (it ran 59.0 s)"),
            ("m3", "memory limit of 4 GiB exceeded"),
            ("m4", "invalid output: score is NaN"),
            ("m5", "worker exited with code 1"),
        ]:
            conn.execute(
                "INSERT INTO tasks VALUES ('old', 'null', 'h', 0, ?, 'mh', 'detect', 'failed', "
                "'{}', '{}', ?, NULL, 1.0, 'bwrap', '0.3.0', 1.0)",
                (model, error),
            )
    store = ResultsStore(path)
    kinds = {r.model_id: r.failure for r in store.tasks("old")}
    assert kinds == {
        "m1": None,
        "m2": FailureKind.TIMEOUT,
        "m3": FailureKind.MEMORY,
        "m4": FailureKind.INVALID_OUTPUT,
        "m5": FailureKind.CRASH,
    }
    assert not store.done("old", "null", "h", "m2", "mh", "detect", retry_timeouts=True)
    store.close()
    assert {r.model_id: r.failure for r in ResultsStore(path).tasks("old")} == kinds


def test_store_diff_compares_a_version_1_row_on_the_facts_it_kept():
    from dataclasses import replace

    from harness.results.diff import diff_runs

    new = record()
    old = replace(new, facts=ModelFacts(poisoned=True, dataset="mnist"), schema_version=1)
    assert diff_runs([old], [new]) == {}
    assert diff_runs([replace(old, facts=ModelFacts(poisoned=False, dataset="mnist"))], [new])


def test_a_run_keeps_each_command_once_and_its_reproduction_figures(store):
    store.ensure_run("r1", "tiny", "zoohash1", "harness run a --run-id r1")
    store.ensure_run("r1", "tiny", "zoohash1", "harness reproduce --run-id r1")
    store.ensure_run("r1", "tiny", "zoohash2", "harness run a --run-id r1")
    (run,) = store.runs()
    assert run["commands"] == ["harness run a --run-id r1", "harness reproduce --run-id r1"]
    assert run["zoo_hash"] == "zoohash2"
    fig = {"name": "f1", "source": "paper", "paper": "90 %", "measured": "88 %", "holds": True}
    store.save_figures("r1", [fig, {**fig, "name": "f2", "holds": None}], "harness reproduce")
    store.save_figures("r1", [{**fig, "measured": "91 %", "holds": False}], "harness reproduce")
    figures = {f["name"]: f for f in store.figures("r1")}
    assert figures["f1"]["measured"] == "91 %" and figures["f1"]["holds"] is False
    assert figures["f2"]["holds"] is None and figures["f2"]["command"] == "harness reproduce"
    assert store.figures("other") == []


def _many_tasks(path, n):
    s = ResultsStore(path)
    s.ensure_run("r1", "tiny", "zoohash1")
    for i in range(n):
        s.write_task(record(model_id=f"m{i:04d}", stderr_tail="x" * 500))
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()


def test_a_damaged_store_refuses_to_open_and_recovery_keeps_what_is_readable(tmp_path):
    from harness.results import StoreDamaged
    from harness.results.recover import check, recover

    path = tmp_path / "results.sqlite"
    _many_tasks(path, 400)
    data = bytearray(path.read_bytes())
    page = 4096
    data[len(data) // 2 : len(data) // 2 + 2 * page] = b"\xa5" * (2 * page)  # two pages
    path.write_bytes(bytes(data))
    assert check(path)
    with pytest.raises(StoreDamaged, match="harness store recover"):
        ResultsStore(path)
    report = recover(path)
    assert report.kept.is_file() and report.kept.name.startswith("results.sqlite.damaged-")
    assert report.rows["runs"] == 1 and 300 < report.rows["tasks"] < 400, report
    assert report.lost_ranges >= 1
    fresh = ResultsStore(path)  # sound again; what was lost is simply not done
    assert len(fresh.tasks("r1")) == report.rows["tasks"]
    assert fresh.tasks("r1")[0].outputs == record().outputs


def test_only_a_damaged_file_counts_as_damage():
    from harness.results.damage import is_damage

    assert is_damage(sqlite3.DatabaseError("database disk image is malformed"))
    for other in (sqlite3.OperationalError("database is locked"), sqlite3.IntegrityError("x")):
        assert not is_damage(other)


def test_a_full_disk_is_said_as_one(tmp_path):
    """SQLite's "database or disk is full" becomes the OSError it is, with the path."""
    import errno

    s = ResultsStore(tmp_path / "results.sqlite")
    s.ensure_run("r1", "tiny", "zoohash1")
    s.conn.execute("PRAGMA max_page_count = 8")  # a store that cannot grow: SQLITE_FULL
    with pytest.raises(OSError) as caught:
        for i in range(200):
            s.write_task(record(model_id=f"m{i}", stderr_tail="x" * 2000))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(s.path)
    assert "no space left" in caught.value.strerror
    s.write_task(record(model_id="small"))  # the store itself is untouched and usable


def test_a_store_keyed_before_seeds_keeps_its_rows_as_seed_0_and_takes_other_seeds(tmp_path):
    """Stores written before `harness run --seeds` key a task without its replicate: the
    store rekeys them once (every row as seed 0) and then holds seed 1 of the same task."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_1)
    store = ResultsStore(path)
    (old,) = store.tasks("old")
    assert old.replicate == 0
    key = {f: getattr(old, f) for f in ("submission", "submission_hash", "model_id", "model_hash")}
    assert store.done("old", **key, track=old.track)
    assert not store.done("old", **key, track=old.track, replicate=1)
    store.write_task(dataclasses.replace(old, replicate=1, scores={"ca": 0.5}))
    assert [r.replicate for r in store.tasks("old")] == [0, 1]
    assert [r.scores["ca"] for r in store.tasks("old", replicate=1)] == [0.5]
    assert store.done("old", **key, track=old.track, replicate=1)
    store.close()
    assert len(ResultsStore(path).tasks("old")) == 2  # reopening rekeys nothing again


def test_one_coordinator_per_run_a_second_is_refused_in_one_line(tmp_path):
    """Two `harness run`s of one run would plan the same missing tasks and run each twice."""
    from harness.api import Track
    from harness.errors import HarnessError
    from harness.execution.config import RunConfig
    from harness.execution.runner import run_submissions

    store = ResultsStore(tmp_path / "results.sqlite")
    other = ResultsStore(tmp_path / "results.sqlite")  # another process's handle
    with store.run_lock("r1"):
        refused = pytest.raises(HarnessError, match="another process is running run 'r1'")
        with refused as err, other.run_lock("r1"):
            pass
        assert "fix: wait for it to finish" in str(err.value) and "\n" not in str(err.value)
        with other.run_lock("r2"):  # another run of the same store is free
            pass
        with pytest.raises(HarnessError, match="running run 'r1'"):
            config = RunConfig(backend="process", run_id="r1")
            run_submissions([], "tiny", [Track.DETECT], other, config)
    with other.run_lock("r1"):  # released when its holder is done
        pass


def test_rows_from_a_newer_harness_are_refused_not_misread(store):
    """Unknown scores, or a row of a later schema version, stop the reader with one line
    instead of being dropped (a newer harness's scores would otherwise be misread)."""
    from harness.errors import HarnessError
    from harness.tracks import aggregate

    store.write_task(record(scores={"score": 0.25, "from_the_future": 1.0}))
    with pytest.raises(HarnessError, match="from_the_future"):
        aggregate(store.tasks("r1"))
    store.conn.execute("UPDATE tasks SET schema_version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(HarnessError, match=f"schema version {SCHEMA_VERSION + 1}"):
        store.tasks("r1")


def test_attack_instances_of_an_older_store_read_without_the_counterpart_s_asr(tmp_path):
    """A store written before the attack track measured the counterparts' ASR gets the
    column when opened; its rows read with None (harness attack run builds them again) and
    new rows keep the value."""
    from harness.results import AttackInstance

    path = tmp_path / "old.sqlite"
    ResultsStore(path).close()
    with sqlite3.connect(path) as conn:  # the table as it was written before the column
        conn.execute("DROP TABLE attack_instances")
        conn.execute(
            "CREATE TABLE attack_instances (run_id TEXT NOT NULL, attack TEXT NOT NULL, "
            "attack_hash TEXT NOT NULL, instance INTEGER NOT NULL, status TEXT NOT NULL, "
            "error TEXT, stderr_tail TEXT, model_id TEXT, counterpart_id TEXT, ca REAL, "
            "counterpart_ca REAL, asr REAL, labels_changed REAL, images_changed REAL, "
            "seconds REAL, finished REAL NOT NULL, PRIMARY KEY (run_id, attack, instance))"
        )
        conn.execute(
            "INSERT INTO attack_instances VALUES ('r', 'a', 'h', 0, 'ok', NULL, NULL, 'm', "
            "'c', 0.98, 0.985, 1.0, 0.1, 0.1, 3.0, 1.0)"
        )
    store = ResultsStore(path)
    (old,) = store.attack_instances("r")
    assert old.asr == 1.0 and old.counterpart_asr is None
    store.write_attack_instance(AttackInstance("r", "a", "h", 1, "ok", asr=0.99,
                                               counterpart_asr=0.02))  # fmt: skip
    assert [i.counterpart_asr for i in store.attack_instances("r")] == [None, 0.02]
