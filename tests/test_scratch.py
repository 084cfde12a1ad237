"""Sandbox scratch folders: those a killed harness process left go with the next process's
first folder; those a live process holds stay, whatever the pid in their name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from harness import paths

_OWNER = """
import os, signal, sys
from harness.paths import scratch_dir
folder = scratch_dir("null")
(folder / "inbox").mkdir()
(folder / "inbox" / "model.keras").write_bytes(b"x" * 1000)
print(folder, flush=True)
if sys.argv[1] == "die":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()  # hold the folder until told
"""


def _owner(tmp_path, mode):
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={"TMPDIR": str(tmp_path), "PYTHONPATH": str(paths.repo_root())},
    )  # fmt: skip
    folder = tmp_path / proc.stdout.readline().strip().rsplit("/", 1)[-1]
    assert folder.name.startswith("harness-null-p") and (folder / "inbox").is_dir()
    return proc, folder


def test_a_killed_process_folders_go_and_a_live_ones_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(paths.tempfile, "tempdir", None)  # re-read TMPDIR
    killed, dead = _owner(tmp_path, "die")
    assert killed.wait() == -signal.SIGKILL
    alive, held = _owner(tmp_path, "hold")
    # The pid in a name proves nothing (pids are recycled, or belong to another PID
    # namespace): a folder named for this live process but locked by no one is stale.
    recycled = tmp_path / f"harness-null-p{os.getpid()}-abc123"
    recycled.mkdir()
    (recycled / ".owner").touch()
    unrelated = tmp_path / "harness-notes"
    unrelated.mkdir()
    try:
        with paths.scratch("check") as mine:
            assert mine.parent == tmp_path and mine.is_dir()
            assert not dead.exists() and not recycled.exists()
            assert held.is_dir() and unrelated.is_dir()
            other = paths.scratch_dir("neural-cleanse-p1")  # a name holding "-p<n>" itself
            assert paths.sweep_scratch() == 0 and other.is_dir() and mine.is_dir()
        assert not mine.exists() and other.exists()
        paths.remove_scratch(other)
        assert not other.exists()
    finally:
        alive.communicate("")
    assert paths.sweep_scratch() == 1 and not held.exists() and unrelated.is_dir()
