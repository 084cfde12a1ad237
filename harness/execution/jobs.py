"""A job: one submission's tasks on one model, run where the executor puts it.

All the tracks a submission runs on one model go to one worker in one job, one after
another in the same sandbox session, so a defense can reuse in ``repair`` what its
``detect`` computed on that model (Neural Cleanse reverse-engineers each model once).

The worker keeps its sandboxes warm between jobs (a sandbox start imports TensorFlow:
about 4 s): a few of the most recent submissions' runners per process, closed by
:func:`close_runners` at the end of a run. A worker finds the model and the submission on
its own disk (a shared ``HARNESS_HOME``, or the same host), else it answers which it lacks
and the coordinator sends the job again with them (``harness.zoo.transfer``).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import stat
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import FailureKind
from harness.execution.configure import COMPLETE
from harness.execution.task import SubmissionRunner, TaskResult
from harness.paths import harness_home
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, content_hash
from harness.tracks import RunOptions, by_name
from harness.zoo.runkey import RunKey
from harness.zoo.store import ZooModel, ZooStore
from harness.zoo.transfer import pack_folder, unpack_folder, unpack_object

#: Warm runners a worker process keeps (the most recently used submissions). Jobs come
#: submission by submission, so two cover the switch from one to the next.
KEEP_WARM = 2


@dataclass(frozen=True)
class ModelJob:
    run_id: str
    spec: SubmissionSpec
    model: ZooModel
    tracks: tuple[str, ...]  # the task kinds' names, in the registry's order
    options: RunOptions
    limits: SandboxLimits
    backend: str
    #: hash of the submission folder's files (a variant's ``content_hash`` adds its params)
    folder_hash: str
    #: "model" / "submission" packed, for a worker that has not got them on its disk
    files: dict[str, bytes] = field(default_factory=dict)
    #: the replicate (``harness run --seeds K``): 0 .. K-1
    replicate: int = 0
    #: a learned detector's configure output on the coordinator (harness.execution.configure), or
    #: why its configure step failed (every task then fails with it)
    configured: str | None = None
    configure_error: str | None = None
    #: the run's key (``harness.zoo.runkey``), read on the coordinator: a worker that shares
    #: no disk with it derives the same anonymous ids and seeds
    run_key: RunKey | None = field(default=None, repr=False)

    @property
    def wall_seconds(self) -> float:
        """Each task's wall-clock budget: the submission's request under the run's cap."""
        res = self.spec.resources
        return self.limits.capped(res.wall_seconds_per_model, res.memory_gb).wall_seconds

    def with_files(self, missing: tuple[str, ...]) -> ModelJob:
        """This job again, carrying what a worker said it lacks (from this host's disk)."""
        if set(missing) <= set(self.files):
            from harness.errors import HarnessError

            raise HarnessError(
                f"a worker could not use the {', '.join(missing)} it was sent",
                fix="check the worker's HARNESS_HOME is writable (docs/SCALING.md)",
            )
        files = dict(self.files)
        if "model" in missing:
            files["model"] = pack_folder(self.model.root)
        if "submission" in missing:
            files["submission"] = pack_folder(self.spec.path)
        if "configured" in missing and self.configured:
            files["configured"] = pack_folder(Path(self.configured))
        return dataclasses.replace(self, files=files)


@dataclass
class JobResult:
    tasks: list[tuple[str, TaskResult]] = field(default_factory=list)
    isolation: str = ""
    missing: tuple[str, ...] = ()  # what the worker lacked: the job comes again with it


def run_job(job: ModelJob) -> JobResult:
    """Run a job's tasks in the submission's warm sandbox (the function workers run)."""
    model = _local_model(job)
    spec = _local_submission(job)
    has_configured, configured = _local_configured(job)
    have = (("model", model), ("submission", spec), ("configured", has_configured))
    missing = tuple(name for name, there in have if not there)
    if missing:
        return JobResult(missing=missing)
    assert model is not None and spec is not None
    if job.configure_error:
        return JobResult(
            [(name, _failed(model, name, job.configure_error)) for name in job.tracks], "none"
        )
    runner = _runner(spec, job.limits, job.backend, configured, job.replicate)
    runner.options = job.options
    tasks = [
        (name, runner.run(job.run_id, model, by_name(name), job.replicate, job.run_key))
        for name in job.tracks
    ]
    return JobResult(tasks, runner.isolation)


def _failed(model: ZooModel, name: str, error: str) -> TaskResult:
    scores = by_name(name).failed(model).to_json()
    return TaskResult("failed", scores=scores, error=error, failure=FailureKind.SETUP)


# -- what this worker has on disk ----------------------------------------------------------
def _local_model(job: ModelJob) -> ZooModel | None:
    """The job's model on this host: at the coordinator's path (shared disk), in this
    host's own zoo store (by content hash), or from the files the job carries."""
    m = job.model
    if (m.root / "private" / "truth.json").is_file():
        return m
    store = ZooStore()
    if not store.has_object(m.hash):
        if "model" not in job.files:
            return None
        unpack_object(store, m.hash, job.files["model"])
    return ZooModel(m.id, m.hash, store.object_dir(m.hash))


def _local_submission(job: ModelJob) -> SubmissionSpec | None:
    """The job's submission on this host: its folder if the same files are there, a copy
    received earlier (by content hash), or the files the job carries."""
    spec = job.spec
    if _has_folder(spec.path, job.folder_hash):
        return spec
    copy = harness_home() / "submissions" / job.folder_hash
    if not copy.is_dir():
        if "submission" not in job.files:
            return None
        unpack_folder(job.files["submission"], copy)
    return dataclasses.replace(spec, path=copy)


def _local_configured(job: ModelJob) -> tuple[bool, Path | None]:
    """(whether this host has what the job needs, the job's configure output here: None
    when it has none). A host that lacks it gets the job again, carrying it."""
    if not job.configured:
        return True, None
    here = Path(job.configured)
    if (here / COMPLETE).is_file():
        return True, here
    copy = harness_home() / "configured" / here.name
    if not (copy / COMPLETE).is_file():
        if "configured" not in job.files:
            return False, None
        unpack_folder(job.files["configured"], copy)
    return True, copy


_CHECKED: dict[tuple[Path, str], bool] = {}


def _has_folder(folder: Path, expected: str) -> bool:
    """Does ``folder`` hold the submission's files (checked once per run and process)?"""
    key = (folder, expected)
    if key not in _CHECKED:
        _CHECKED[key] = folder.is_dir() and content_hash(folder) == expected
    return _CHECKED[key]


# -- warm runners ----------------------------------------------------------------------------
_RUNNERS: OrderedDict[tuple, tuple[SubmissionRunner, Path]] = OrderedDict()


def _runner(
    spec: SubmissionSpec,
    limits: SandboxLimits,
    backend: str,
    configured: Path | None = None,
    replicate: int = 0,
) -> SubmissionRunner:
    """The warm runner of a submission for one replicate. Each replicate gets a worker of
    its own, so it is a fresh instance of the submission: module state (a cache of what an
    earlier replicate's tasks saw) cannot carry over. Jobs come replicate by replicate, so
    this costs one worker start per replicate."""
    key = (
        spec.name,
        spec.content_hash,
        str(spec.path),
        limits,
        backend,
        str(configured),
        replicate,
    )
    if key in _RUNNERS:
        _RUNNERS.move_to_end(key)
        return _RUNNERS[key][0]
    while len(_RUNNERS) >= KEEP_WARM:
        _close(_RUNNERS.popitem(last=False)[1])
    _sweep_once()
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-{spec.name}-"))
    shared = (("configured", configured),) if configured else ()
    _RUNNERS[key] = (
        SubmissionRunner(spec, backend, limits, workdir, shared=shared),
        workdir,
    )
    return _RUNNERS[key][0]


#: A warm sandbox's folders (inbox and scratch) are under ``harness-run-<pid>-<name>-*``
#: in the temporary folder, ``pid`` the process that made them.
WORKDIR_PREFIX = "harness-run-"
_SWEPT: list[bool] = []


def sweep_workdirs(parent: Path) -> int:
    """Remove the sandbox folders of harness processes that were killed (SIGKILL, the OOM
    killer: nothing of theirs ran to remove them): this user's, named for a process that no
    longer exists. How many there were."""
    removed = 0
    for folder in parent.glob(f"{WORKDIR_PREFIX}*-*"):
        owner = folder.name.removeprefix(WORKDIR_PREFIX).split("-")[0]
        try:
            st = folder.lstat()
        except OSError:
            continue
        # Another user's folder of that name (or a link) is none of ours to remove.
        mine = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
        if mine and owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _sweep_once() -> None:
    """The first sandbox a process starts clears what killed runs left (once a process)."""
    if not _SWEPT:
        _SWEPT.append(True)
        sweep_workdirs(Path(tempfile.gettempdir()))


def _close(entry: tuple[SubmissionRunner, Path]) -> None:
    runner, workdir = entry
    try:
        runner.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def close_runners() -> None:
    """Stop this process's warm sandboxes and remove their folders (end of a run)."""
    _CHECKED.clear()
    while _RUNNERS:
        _close(_RUNNERS.popitem(last=False)[1])


atexit.register(close_runners)
