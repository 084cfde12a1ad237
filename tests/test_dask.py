"""Runs and builds on Dask store what a run in one process stores.

- an embedded LocalCluster (`harness run --workers 2`), killed mid-run and run again:
  every task exactly once, with the scores of the in-process run;
- a scheduler and a worker on loopback that share no disk with the coordinator (the
  worker runs under bubblewrap with the coordinator's zoo and submission folders hidden):
  it is sent the models and submissions it lacks, trains a zoo entry the coordinator then
  fetches, and stores the same scores.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from harness.api import Track
from harness.execution.config import RunConfig
from harness.execution.runner import Plan, run_plans
from harness.results import ResultsStore
from harness.results.diff import diff_runs
from harness.submission.manifest import load_submission
from harness.zoo.store import ZooStore

pytestmark = pytest.mark.sandbox
#: Two clean models and the patch BadNet of the tiny zoo.
THREE = ["mnist-clean-a-s1-v1", "mnist-clean-b-s2-v1", "mnist-badnets-patch3-t0-v1"]


def _plans(root: Path) -> list[Plan]:
    """null on detect and repair (scored against each model), feature squeezing's
    filter on the BadNet (its flags depend on the model)."""
    null = load_submission(root / "null")
    squeeze = load_submission(root / "feature-squeezing")
    return [
        Plan(null, [Track.DETECT, Track.REPAIR], THREE),
        Plan(squeeze, [Track.FILTER], THREE[2:]),
    ]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, tiny_zoo, backend) -> ResultsStore:
    store = ResultsStore(tmp_path_factory.mktemp("inproc") / "results.sqlite")
    run_plans(_plans(REPO / "submissions"), "tiny", store, RunConfig(backend=backend))
    return store


def _same_tasks(a: ResultsStore, b: ResultsStore, keys: set | None = None) -> None:
    """The same tasks with the same facts, outputs and scores (to 1e-6: the two runs'
    processes run TensorFlow on one thread alike, but need not agree to the last bit)."""

    def records(store: ResultsStore) -> list:
        return [
            r
            for r in store.tasks("tiny")
            if keys is None or (r.submission, r.model_id, r.track) in keys
        ]

    assert diff_runs(records(a), records(b), tolerance=1e-6) == {}


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_killed_local_cluster_run_resumes_with_the_same_scores(
    tmp_path, tiny_zoo, backend, harness_home, in_process
):
    db = tmp_path / "results.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(REPO / "submissions" / "null"),
        "--profile",
        "tiny",
        "--db",
        str(db),
        "--backend",
        backend,
        "--workers",
        "2",
    ]
    env = {**os.environ, "HARNESS_HOME": str(harness_home), "HARNESS_PROGRESS": "0"}
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 180
    count = 0
    while time.time() < deadline and count < 3:
        time.sleep(0.2)
        if db.exists():
            try:
                count = sqlite3.connect(db).execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its cluster's processes
    proc.wait()
    assert 3 <= count < 2 * len(tiny_zoo), "kill it mid-run"
    # Finished in one process: what the killed cluster stored counts as it is.
    again = subprocess.run([*cmd[:-1], "1"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = (
        sqlite3.connect(db)
        .execute("SELECT model_id, track, COUNT(*) FROM tasks GROUP BY model_id, track")
        .fetchall()
    )
    assert len(rows) == 2 * len(tiny_zoo) and all(n == 1 for *_, n in rows)
    shared = {("null", m, t) for m in THREE for t in ("detect", "repair")}
    _same_tasks(in_process, ResultsStore(db), shared)


@pytest.fixture
def loopback_cluster(tmp_path, harness_home):
    """A scheduler on 127.0.0.1 and one worker that cannot see the coordinator's zoo
    or its submission folders (bubblewrap mounts empty folders over them)."""
    subs = tmp_path / "subs"
    for name in ("null", "feature-squeezing"):
        shutil.copytree(REPO / "submissions" / name, subs / name)
    coord_zoo = tmp_path / "coordinator-zoo"
    coord_zoo.mkdir()
    worker_home = tmp_path / "worker-home"
    worker_home.mkdir()
    address_file = tmp_path / "scheduler.json"
    env = {**os.environ, "HARNESS_PROGRESS": "0", "TF_NUM_INTRAOP_THREADS": "1"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
        + ["--port", "0", "--no-dashboard", "--scheduler-file", str(address_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(address_file)
    hidden = [a for p in (harness_home, subs, coord_zoo) for a in ("--tmpfs", str(p))]
    worker = subprocess.Popen(
        ["bwrap", "--dev-bind", "/", "/", *hidden, "--die-with-parent", "--"]
        + [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file"]
        + [str(address_file), "--nthreads", "1", "--memory-limit", "0", "--no-dashboard"],
        env={**env, "HARNESS_HOME": str(worker_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = json.loads(address_file.read_text())["address"]
    try:
        yield address, subs, ZooStore(coord_zoo), worker_home
    finally:
        for proc in (worker, scheduler):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_scheduler_on_loopback_without_shared_disk(
    loopback_cluster, tmp_path, tiny_zoo, toy_zoo, backend, in_process
):
    import dataclasses

    from harness.executors import open_executor
    from harness.zoo.build_jobs import build_profile_on
    from harness.zoo.builder import BuildFailed
    from harness.zoo.spec import load_profile

    address, subs, coord_zoo, worker_home = loopback_cluster
    store = ResultsStore(tmp_path / "results.sqlite")
    with open_executor(scheduler=address) as executor:
        run_plans(_plans(subs), "tiny", store, RunConfig(backend=backend), executor=executor)
        # The worker trains a toy model into its own store; the coordinator fetches it.
        toy = load_profile("toy")
        one = dataclasses.replace(toy, entries=toy.entries[:1])
        built = build_profile_on(executor, one, coord_zoo)
        # A model that fails on the worker comes back as data: the build names it, once.
        cannot = dataclasses.replace(
            toy.entries[1],
            id="cannot-take-v1",
            train_size=1000,
            epochs=1,
            test_size=200,
            val_per_class=5,
            attack_params={"poison_rate": 0.002, "size": 3, "target": 0},
        )
        with pytest.raises(BuildFailed) as failed:
            build_profile_on(executor, dataclasses.replace(toy, entries=(cannot,)), coord_zoo)
        assert list(failed.value.failed) == ["cannot-take-v1"]
        assert "did not take" in failed.value.failed["cannot-take-v1"]
        assert not coord_zoo.has_object(cannot.spec_hash())
    _same_tasks(in_process, store)
    worker_zoo = ZooStore(worker_home / "zoo")
    received = {p.name for p in (worker_home / "submissions").iterdir()}
    assert received == {p.spec.content_hash for p in _plans(subs)}, "sent both submissions"
    for model in THREE:
        assert worker_zoo.has_object(ZooStore().model("tiny", model).hash)
    for mine, reference in zip(built, toy_zoo[:1], strict=True):
        assert mine.hash == reference.hash
        assert worker_zoo.has_object(mine.hash) and coord_zoo.has_object(mine.hash)
        ours, theirs = mine.truth(), reference.truth()
        assert abs(ours.ca - theirs.ca) < 0.03, (mine.id, ours.ca, theirs.ca)
        assert sorted(p.name for p in mine.public_dir.iterdir()) == sorted(
            p.name for p in reference.public_dir.iterdir()
        )
