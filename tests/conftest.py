"""Shared fixtures: a private HARNESS_HOME per test session and the tiny and toy zoos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "submissions"


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """`harness ARGS...` as a user runs it (a fresh process, no progress bars)."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_PROGRESS": "0"},
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session", autouse=True)
def harness_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session builds into its own cache; nothing leaks between runs."""
    home = Path(os.environ.get("HARNESS_TEST_HOME") or tmp_path_factory.mktemp("harness-home"))
    os.environ["HARNESS_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_zoo(harness_home: Path):
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    return build_profile(load_profile("tiny"))


@pytest.fixture(scope="session")
def toy_zoo(harness_home: Path):
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    return build_profile(load_profile("toy"))


@pytest.fixture(scope="session")
def backend() -> str:
    from harness.sandbox.backends import bwrap_available

    if not bwrap_available():
        pytest.fail(
            "bubblewrap is not usable on this machine: install it (apt-get install "
            "bubblewrap); the sandbox tests must not silently skip"
        )
    return "bwrap"


@pytest.fixture(scope="session")
def attack_zoo(harness_home: Path):
    """One small model of every recipe beyond BadNets, and four clean counterparts."""
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    return build_profile(load_profile("tiny-attacks"))


@pytest.fixture(scope="session")
def face_zoo(harness_home: Path):
    """A clean face model and two face BadNets on 10 SynthFaces identities."""
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    return build_profile(load_profile("tiny-faces"))
