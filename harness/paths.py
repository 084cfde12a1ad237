"""Where the harness keeps built artifacts: one home directory, never the working directory."""

from __future__ import annotations

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
# the system's temporary directory for as long as the process that made it. A process that
# ends normally removes its folders; one that is killed (SIGKILL, the OOM killer, a Dask
# nanny restarting its worker) cannot, so each folder is named for its owner's process id
# and the next harness process to make one removes those whose owner is gone, as the
# sandbox does with the control groups of killed processes.
_SCRATCH = re.compile(r"^harness-.+-p(\d+)-[A-Za-z0-9_]+$")


def scratch_dir(kind: str) -> Path:
    """A fresh folder ``harness-<kind>-p<pid>-XXXXXXXX`` in the temporary directory, after
    removing the folders a killed harness process left there."""
    sweep_scratch()
    return Path(tempfile.mkdtemp(prefix=f"harness-{kind}-p{os.getpid()}-"))


def sweep_scratch(parent: Path | None = None) -> int:
    """Remove the scratch folders of harness processes that no longer exist; how many."""
    removed = 0
    for folder in Path(parent or tempfile.gettempdir()).glob("harness-*-p*-*"):
        match = _SCRATCH.match(folder.name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += not folder.exists()
    return removed


@contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """A :func:`scratch_dir` removed when the block ends."""
    folder = scratch_dir(kind)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
