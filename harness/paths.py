"""Where the harness keeps built artifacts: one home directory, never the working directory."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_HOME = "HARNESS_HOME"


def harness_home() -> Path:
    """The cache root: $HARNESS_HOME, else ~/.cache/backdoor-harness."""
    root = os.environ.get(ENV_HOME)
    path = Path(root) if root else Path.home() / ".cache" / "backdoor-harness"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def repo_root() -> Path:
    """The checkout holding models_zoo/, submissions/ and leaderboard/."""
    return Path(__file__).resolve().parent.parent


def zoo_specs_dir() -> Path:
    return repo_root() / "models_zoo"


def data_dir() -> Path:
    path = harness_home() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def zoo_dir() -> Path:
    path = harness_home() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_results_db() -> Path:
    return harness_home() / "results.sqlite"


# -- scratch folders ---------------------------------------------------------------------
# A sandbox's work folder (its inbox and scratch, bind-mounted into bubblewrap) lives under
# the system's temporary directory for as long as the harness process that made it needs
# it. A process that ends normally removes its folders; one that is killed (SIGKILL, the
# OOM killer, a Dask nanny restarting its worker) cannot. So the owner holds an exclusive
# flock(2) on the folder's ``.owner`` file while the folder is in use, and the next harness
# process to make a folder removes those whose lock it can take: the kernel drops a lock
# when the last process holding it dies, whatever the process ids or PID namespaces (a
# container sharing /tmp, a recycled pid). The pid in the name is for people reading /tmp.
_SCRATCH = re.compile(r"^harness-.+-p\d+-[A-Za-z0-9_]+$")
_OWNER = ".owner"
_HELD: dict[Path, int] = {}  # this process's folders and their lock's descriptor


def scratch_dir(kind: str) -> Path:
    """A fresh folder ``harness-<kind>-p<pid>-XXXXXXXX`` in the temporary directory, owned
    by this process until :func:`remove_scratch` (after removing the folders that killed
    harness processes left there)."""
    sweep_scratch()
    folder = Path(tempfile.mkdtemp(prefix=f"harness-{kind}-p{os.getpid()}-"))
    fd = os.open(folder / _OWNER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _HELD[folder] = fd
    return folder


def remove_scratch(folder: Path) -> None:
    """Remove a :func:`scratch_dir` folder and let go of its lock."""
    shutil.rmtree(folder, ignore_errors=True)
    fd = _HELD.pop(folder, None)
    if fd is not None:
        os.close(fd)


def sweep_scratch(parent: Path | None = None) -> int:
    """Remove the scratch folders no live process owns; how many. A folder without its
    lock file yet (being made this instant) is left alone."""
    removed = 0
    for folder in Path(parent or tempfile.gettempdir()).glob("harness-*-p*-*"):
        if _SCRATCH.match(folder.name) is None or folder in _HELD:
            continue
        try:
            fd = os.open(folder / _OWNER, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its owner is alive
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
        finally:
            os.close(fd)
    return removed


@contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """A :func:`scratch_dir` removed when the block ends."""
    folder = scratch_dir(kind)
    try:
        yield folder
    finally:
        remove_scratch(folder)
