"""Where the harness keeps built artifacts: one home directory, never the working directory."""

from __future__ import annotations

import os
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
