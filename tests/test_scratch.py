"""Sandbox scratch folders: a killed harness process's folders go with the next one's."""

from __future__ import annotations

import signal
import subprocess
import sys

from harness import paths

_KILLED = """
import os, signal, sys
from harness.paths import scratch_dir
folder = scratch_dir("null")
(folder / "inbox").mkdir()
(folder / "inbox" / "model.keras").write_bytes(b"x" * 1000)
print(folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_process_folders_are_removed_and_a_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(paths.tempfile, "tempdir", None)  # re-read TMPDIR
    done = subprocess.run(
        [sys.executable, "-c", _KILLED], capture_output=True, text=True,
        env={"TMPDIR": str(tmp_path), "PYTHONPATH": str(paths.repo_root())},
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL
    dead = tmp_path / done.stdout.strip().rsplit("/", 1)[-1]
    assert dead.is_dir() and dead.name.startswith("harness-null-p")
    with paths.scratch("check") as mine:
        assert mine.parent == tmp_path and mine.is_dir()
        assert not dead.exists()
        other = paths.scratch_dir("neural-cleanse-p1")  # a name that itself holds "-p<n>"
        assert paths.sweep_scratch() == 0 and other.is_dir() and mine.is_dir()
    assert not mine.exists() and other.exists()
    unrelated = tmp_path / "harness-notes"
    unrelated.mkdir()
    paths.sweep_scratch()
    assert unrelated.is_dir()
