"""`harness zoo build` on several workers: one job per zoo entry.

In process (``--workers 1``) the builder's own loop runs. On Dask each entry that is not
cached is one job: the worker trains it under the object's lock into the coordinator's
store when it sees that very store (a shared ``HARNESS_HOME``, or the same host: the
store's random id file tells), else into its own store, from which the coordinator then
fetches the finished object. The coordinator writes the profile's index last, as the
builder does. An entry that fails (a backdoor under its ASR floor) comes back as data, not
as an exception, so the other workers' models are kept; the build ends with one error
naming each failed entry (``BuildFailed``), as the builder's own loop does.

(This module is outside the builder's code hash: scheduling does not change a model.)
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.executors import Executor, InProcess, quiet_tensorflow, worker_address
from harness.zoo.builder import BuildFailed, build_entries, build_profile
from harness.zoo.bundle import is_current
from harness.zoo.spec import ZooEntry, ZooProfile
from harness.zoo.splits import record as record_splits
from harness.zoo.store import ZooModel, ZooStore
from harness.zoo.transfer import pack_object, unpack_object

#: Called once per entry: the entry, "built" / "cached" / "migrated" / "failed", the seconds
#: its job took (None for what the coordinator found cached itself).
BuildProgress = Callable[[ZooEntry, str, float | None], None]


def store_id(store: ZooStore) -> str:
    """A zoo store's random id (made on first use): a worker that reads the same id at
    the coordinator's path shares the coordinator's disk."""
    path = store.root / "store-id"
    if not path.is_file():
        tmp = path.with_suffix(f".{uuid.uuid4().hex}")
        tmp.write_text(uuid.uuid4().hex)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # the first writer's id wins
        tmp.unlink()
    return path.read_text().strip()


def store_here(root: str, expected: str) -> ZooStore:
    """The coordinator's store if this worker shares it, else this worker's own."""
    path = Path(root) / "store-id"
    if path.is_file() and path.read_text().strip() == expected:
        return ZooStore(Path(root))
    return ZooStore()


@dataclass(frozen=True)
class BuildJob:
    entry: ZooEntry
    store_root: str  # the coordinator's zoo folder
    store_id: str  # and its id
    force: bool = False
    mnist_source: Path | None = None


@dataclass(frozen=True)
class BuildResult:
    status: str  # "built", "cached", "migrated" or "failed"
    seconds: float
    worker: str | None
    problem: str = ""  # why it failed


def build_job(job: BuildJob) -> BuildResult:
    """Build (or find) one entry on this worker, under its object lock."""
    start = time.perf_counter()
    quiet_tensorflow()
    store = store_here(job.store_root, job.store_id)
    statuses: list[str] = []
    try:
        build_entries(
            [job.entry],
            store,
            force=job.force,
            mnist_source=job.mnist_source,
            on_done=lambda _, status: statuses.append(status),
        )
    except BuildFailed as exc:  # its own failure; a data set that cannot be read stops all
        problem = exc.failed[job.entry.id]
        return BuildResult("failed", time.perf_counter() - start, worker_address(), problem)
    return BuildResult(statuses[-1], time.perf_counter() - start, worker_address())


def packed_object(root: str, expected: str, spec_hash: str) -> bytes:
    """A finished object from the store a worker built it into."""
    return pack_object(store_here(root, expected), spec_hash)


def build_profile_on(
    executor: Executor,
    profile: ZooProfile,
    store: ZooStore | None = None,
    *,
    force: bool = False,
    mnist_source: Path | None = None,
    on_done: BuildProgress | None = None,
) -> list[ZooModel]:
    """Build every entry of ``profile`` on ``executor``; the profile's index last."""
    store = store or ZooStore()
    quiet_tensorflow()
    if isinstance(executor, InProcess):
        done = _timed(on_done)
        return build_profile(profile, store, force=force, mnist_source=mnist_source, on_done=done)
    jobs = []
    for entry in profile.entries:
        root = store.object_dir(entry.spec_hash())
        if not force and store.has_object(entry.spec_hash()) and is_current(root):
            if on_done:
                on_done(entry, "cached", None)
        else:
            jobs.append(BuildJob(entry, str(store.root), store_id(store), force, mnist_source))
    failed: dict[str, str] = {}
    for job, res in executor.map_unordered(build_job, jobs):
        spec_hash = job.entry.spec_hash()
        if res.status == "failed":
            failed[job.entry.id] = res.problem
            if on_done:
                on_done(job.entry, res.status, res.seconds)
            continue
        if not store.has_object(spec_hash):  # built where this host cannot see it
            data = executor.run_on(
                res.worker, packed_object, str(store.root), store_id(store), spec_hash
            )
            unpack_object(store, spec_hash, data)
        if on_done:
            on_done(job.entry, res.status, res.seconds)
    if failed:  # named in the profile's order, whichever worker finished first
        in_order = {e.id: failed[e.id] for e in profile.entries if e.id in failed}
        raise BuildFailed(in_order, len(profile.entries))
    pairs = [(e.id, e.spec_hash()) for e in profile.entries]
    store.write_index(profile.name, pairs)
    record_splits(profile, store)
    return [ZooModel(i, h, store.object_dir(h)) for i, h in pairs]


def _timed(on_done: BuildProgress | None) -> Callable[[ZooEntry, str], None] | None:
    """The builder's callback, with each entry's time measured between calls."""
    if on_done is None:
        return None
    last = [time.perf_counter()]

    def done(entry: ZooEntry, status: str) -> None:
        now = time.perf_counter()
        on_done(entry, status, now - last[0] if status != "cached" else None)
        last[0] = now

    return done
