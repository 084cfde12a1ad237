"""Faults, repeated: `harness run` killed with SIGKILL at ten random points in a row, a Dask
worker killed mid-run, the disk under the store filled, the store and a zoo model damaged.

Each time the same command is run again, as a user would, and the final store must equal
the store of a run that met no fault, task for task: none lost, none duplicated, the same
outputs and scores. Where the user has to act (a full disk, a damaged file), the harness
says so in one line, with the fix, and never prints a traceback.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from harness.results import ResultsStore
from harness.results.diff import diff_runs
from harness.results.recover import check
from harness.sandbox import cgroup

pytestmark = pytest.mark.sandbox

TRACKS = "detect,repair"
#: Seed of the kill points: fixed, so that a failure can be replayed.
KILL_SEED = 20201130
KILLS = 10


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "HARNESS_HOME": str(home), "HARNESS_PROGRESS": "0"}


def _cmd(db: Path, workers: int = 1, profile: str = "toy", tracks: str = TRACKS) -> list[str]:
    return [
        sys.executable, "-m", "harness.cli", "run", str(REPO / "submissions" / "null"),
        "--profile", profile, "--tracks", tracks, "--backend", "bwrap", "--db", str(db),
        "--workers", str(workers),
    ]  # fmt: skip


def _harness(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        env=_env(home), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _records(db: Path) -> list:
    store = ResultsStore(db)
    try:
        return store.tasks(store.latest_run() or "toy")
    finally:
        store.close()


def _assert_same_as(reference: Path, db: Path, tolerance: float = 1e-6) -> None:
    """Every task of the reference run, once, with the same outputs and scores."""
    assert check(db) == []
    rows = (
        sqlite3.connect(db)
        .execute("SELECT submission, model_id, track, COUNT(*) FROM tasks GROUP BY 1, 2, 3")
        .fetchall()
    )
    assert rows and all(n == 1 for *_, n in rows)
    assert diff_runs(_records(reference), _records(db), tolerance) == {}


def _timed_run(db: Path, home: Path, profile: str = "toy") -> tuple[Path, float, float]:
    """Run the command without a fault: its store, when its first task was stored and
    when it ended (seconds from its start)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        _cmd(db, profile=profile), env=_env(home), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = None
    while proc.poll() is None:
        if first is None and _stored(db):
            first = time.perf_counter() - start
        time.sleep(0.1)
    assert proc.returncode == 0, proc.stderr.read()[-3000:] if proc.stderr else ""
    end = time.perf_counter() - start
    return db, first or end, end


@pytest.fixture(scope="module")
def reference(tmp_path_factory, toy_zoo, harness_home) -> tuple[Path, float, float]:
    """The toy zoo's store of a run that met no fault, with its timing: the full disk and
    the damaged store and zoo model of `make test` (TestDiskAndDamage) need a run to
    repeat, not many models (the toy zoo: two models, four tasks; its model trains again
    in seconds)."""
    return _timed_run(tmp_path_factory.mktemp("reference") / "results.sqlite", harness_home)


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory, tiny_zoo, harness_home) -> tuple[Path, float, float]:
    """The tiny zoo's store of a run that met no fault (ten tasks: a killed worker still
    leaves work to do)."""
    db = tmp_path_factory.mktemp("tiny-reference") / "results.sqlite"
    return _timed_run(db, harness_home, "tiny")


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return sqlite3.connect(db, timeout=5).execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    except sqlite3.Error:
        return 0


def _dask_workers(root: int) -> list[int]:
    """Processes under ``root`` that are Dask worker processes (spawned by its nannies)."""
    from harness.sandbox.watch import descendants as _descendants

    found = []
    for pid in _descendants(root)[1:]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in cmdline and b"spawn_main" in cmdline:
            found.append(pid)
    return found


# Classes, so that pytest-xdist (--dist loadscope) runs them side by side. The sweeps (ten
# kills, a killed Dask worker, a store overwritten rather than cut short) are `make
# test-slow`'s: `make test` keeps one fault of each kind (tests/test_dask.py kills a
# whole run and resumes it).
@pytest.mark.slow
class TestKills:
    def test_ten_kills_in_a_row_lose_and_duplicate_nothing(
        self, tmp_path, harness_home, attack_zoo
    ):
        """Ten runs in a row killed at a random point: three while starting (importing,
        starting the sandbox), seven once the run has stored a job of its own, a random part
        of one job's time later (between two jobs, or while one is being stored). On the 11
        models of tiny-attacks, so that every kill lands in a run with work left."""
        ref, first, end = _timed_run(tmp_path / "reference.sqlite", harness_home, "tiny-attacks")
        per_job = (end - first) / len(attack_zoo)
        db = tmp_path / "results.sqlite"
        rng = random.Random(KILL_SEED)
        modes = rng.sample(["starting"] * 3 + ["between tasks"] * 7, KILLS)
        progress = []
        for mode in modes:
            before = _stored(db)
            proc = subprocess.Popen(
                _cmd(db, profile="tiny-attacks"), env=_env(harness_home),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            start = time.perf_counter()
            if mode == "starting":
                time.sleep(rng.uniform(0.2, 0.9 * first))
            else:
                while proc.poll() is None and _stored(db) == before:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, per_job / 2))
            at = time.perf_counter() - start
            proc.send_signal(signal.SIGKILL)  # the harness alone, as the OOM killer would
            proc.wait()
            if db.exists():
                assert check(db) == [], f"killed at {at:.1f} s ({mode}), the store is damaged"
            progress.append((mode, round(at, 2), _stored(db)))
        done = subprocess.run(
            _cmd(db, profile="tiny-attacks"), env=_env(harness_home), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        _assert_same_as(ref, db)
        # The sandboxes of the killed runs died with them (bwrap --die-with-parent): the
        # cgroups they leave hold no process, and the next sandbox start removes them.
        for mount in cgroup.mounts():
            stale = [
                g for g in mount.own.glob("harness-*-*")
                if not Path(f"/proc/{g.name.split('-')[1]}").exists()
            ]  # fmt: skip
            deadline = time.time() + 10
            while any(cgroup.WorkerGroup([g], {}).pids() for g in stale):
                assert time.time() < deadline, "a killed run's sandbox outlived it"
                time.sleep(0.1)
            cgroup.sweep(mount.own)
            assert not any(g.exists() for g in stale)
        print("kill points (s) and tasks stored after each:", progress)


@pytest.mark.slow
class TestWorker:
    def test_a_killed_dask_worker_costs_nothing(self, tmp_path, harness_home, tiny_reference):
        ref, *_ = tiny_reference
        db = tmp_path / "results.sqlite"
        proc = subprocess.Popen(
            _cmd(db, workers=2, profile="tiny"), env=_env(harness_home), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline, victim = time.time() + 300, None
        while time.time() < deadline and proc.poll() is None:
            workers = _dask_workers(proc.pid)
            if len(workers) == 2 and _stored(db) >= 2:
                victim = workers[0]
                os.kill(victim, signal.SIGKILL)
                break
            time.sleep(0.2)
        _, stderr = proc.communicate(timeout=600)
        assert victim is not None, "the run ended before a worker could be killed"
        assert proc.returncode == 0, stderr[-3000:]
        _assert_same_as(ref, db)


class TestDiskAndDamage:  # one class: one reference run (the toy zoo's) serves all three
    def test_a_full_disk_under_the_store_stops_with_one_line_and_loses_nothing(
        self, tmp_path, harness_home, reference
    ):
        """The store lives on a 4 MiB tmpfs (mounted by bubblewrap). A first run stores the
        repair tasks; then, while another process reads the store (so its write-ahead log
        stays in place), the disk is filled to its last byte, and the run of both tracks
        stops at the first write it cannot make, with one line; after space is freed, the
        same command finishes the run. (Repair first: the runs after it have only detect
        tasks left, which are scored without loading a model, so neither imports
        TensorFlow: five seconds less each.)"""
        ref, *_ = reference
        full, keep = tmp_path / "full", tmp_path / "keep"
        full.mkdir()
        keep.mkdir()
        db = full / "results.sqlite"
        run = " ".join(_cmd(db))
        script = f"""
set -u
{" ".join(_cmd(db, tracks="repair"))} > {keep}/zero.out 2> {keep}/zero.err; echo $? > {keep}/zero.rc
{sys.executable} -c "
import sqlite3, time
reading = sqlite3.connect('{db}')
reading.execute('SELECT COUNT(*) FROM tasks').fetchall()
open('{keep}/reading', 'w').close()
time.sleep(600)
" &
reader=$!
for _ in $(seq 600); do [ -e {keep}/reading ] && break; sleep 0.05; done
{sys.executable} -c "
with open('{full}/filler', 'wb') as fh:
    try:
        while True: fh.write(bytes(4096)); fh.flush()
    except OSError: pass
    try:
        while True: fh.write(bytes(1)); fh.flush()
    except OSError: pass
"
{run} > {keep}/first.out 2> {keep}/first.err; echo $? > {keep}/first.rc
kill $reader
rm {full}/filler
{sys.executable} -c "from harness.results.recover import check; print(check('{db}'))" > {keep}/check
{run} > {keep}/second.out 2> {keep}/second.err; echo $? > {keep}/second.rc
cp {db} {keep}/final.sqlite
"""
        user = [] if os.geteuid() == 0 else ["--unshare-user", "--uid", str(os.geteuid())]
        proc = subprocess.run(
            ["bwrap", "--dev-bind", "/", "/", *user, "--size", str(4 << 20), "--tmpfs", str(full),
             "--die-with-parent", "--", "bash", "-c", script],
            env=_env(harness_home), capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (keep / "zero.rc").read_text().strip() == "0", (keep / "zero.err").read_text()
        first = subprocess.CompletedProcess([], int((keep / "first.rc").read_text()), "",
                                            (keep / "first.err").read_text())  # fmt: skip
        _one_line_error(first, str(db), "no space left", "run the same command again")
        assert (keep / "check").read_text().strip() == "[]"  # the store came out sound
        assert (keep / "second.rc").read_text().strip() == "0", (keep / "second.err").read_text()
        _assert_same_as(ref, keep / "final.sqlite")

    @pytest.mark.parametrize(
        "damage", ["truncated", pytest.param("overwritten", marks=pytest.mark.slow)]
    )
    def test_a_damaged_store_says_so_and_recovers(self, tmp_path, harness_home, reference, damage):
        ref, *_ = reference
        db = tmp_path / "results.sqlite"
        with sqlite3.connect(ref) as source, sqlite3.connect(db) as copy:
            source.backup(copy)  # one file, the WAL's pages included
        data = db.read_bytes()
        if damage == "truncated":
            db.write_bytes(data[: len(data) // 2])
        else:
            db.write_bytes(data[:100] + os.urandom(len(data) - 100))
        for args in (["leaderboard", "--db", str(db), "--out", str(tmp_path / "lb")],
                     _cmd(db)[3:]):  # fmt: skip
            proc = _harness(harness_home, *args)
            _one_line_error(proc, "the results store is damaged", "harness store recover")
        assert _harness(harness_home, "store", "check", "--db", str(db)).returncode == 1
        recovered = _harness(harness_home, "store", "recover", "--db", str(db))
        assert recovered.returncode == 0 and "recovered" in recovered.stdout, recovered.stderr
        assert list(tmp_path.glob("results.sqlite.damaged-*"))
        again = subprocess.run(_cmd(db), env=_env(harness_home), capture_output=True, text=True)
        assert again.returncode == 0, again.stderr[-3000:]
        _assert_same_as(ref, db)

    def test_a_damaged_zoo_model_says_so_and_is_rebuilt(
        self, tmp_path, harness_home, toy_zoo, reference
    ):
        """A private copy of the toy zoo with its clean model's weights file cut short (the
        toy zoo, not the tiny one: what is checked is the refusal, the repair and the
        rebuild, and its model retrains in seconds)."""
        ref, *_ = reference
        home = tmp_path / "home"
        for part in ("zoo/objects", "zoo/profiles"):
            (home / part).mkdir(parents=True)
        for model in toy_zoo:
            shutil.copytree(model.root, home / "zoo" / "objects" / model.hash)
        shutil.copyfile(
            harness_home / "zoo" / "profiles" / "toy.json", home / "zoo" / "profiles" / "toy.json"
        )
        for name in os.listdir(harness_home):
            if name not in ("zoo", "results.sqlite") and not (home / name).exists():
                (home / name).symlink_to(harness_home / name)
        victim = home / "zoo" / "objects" / toy_zoo[0].hash / "public" / "model.keras"
        victim.write_bytes(victim.read_bytes()[:1000])
        db = tmp_path / "results.sqlite"
        proc = _harness(home, *_cmd(db)[3:])
        _one_line_error(proc, f"zoo model {toy_zoo[0].id} is damaged", "zoo verify")
        assert _harness(home, "zoo", "verify", "--profile", "toy").returncode == 1
        assert _harness(home, "zoo", "verify", "--profile", "toy", "--repair").returncode == 0
        rebuilt = _harness(home, "zoo", "build", "--profile", "toy")
        assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
        assert "built" in rebuilt.stderr, rebuilt.stderr[-3000:]  # trained again, not copied
        assert _harness(home, "zoo", "verify", "--profile", "toy").returncode == 0
        done = subprocess.run(_cmd(db), env=_env(home), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        # Retraining one model on one thread gives its weights back to float rounding at most,
        # and that can flip an input lying on a decision boundary: a CI run saw the rebuilt
        # clean model answer one of the scored inputs otherwise (tiny zoo: CA 0.966 vs 0.968
        # on 500). Two flipped inputs of the 250 the toy zoo's CA is scored on are allowed;
        # anything lost or duplicated still shows.
        _assert_same_as(ref, db, tolerance=2.5 / 250)
