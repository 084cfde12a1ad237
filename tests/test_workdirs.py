"""A killed `harness run` (SIGKILL, the OOM killer) cannot remove its warm sandboxes'
folders; the next run's first sandbox sweeps them (harness.execution.jobs)."""

from __future__ import annotations

import os
import subprocess

from harness.execution.jobs import WORKDIR_PREFIX, sweep_workdirs


def test_folders_of_killed_runs_are_swept_and_no_others(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has just ended: no process of that number is left
    gone = tmp_path / f"{WORKDIR_PREFIX}{dead.pid}-null-abc"
    (gone / "scratch").mkdir(parents=True)
    (gone / "scratch" / "out.npy").write_bytes(b"x" * 100)
    live = tmp_path / f"{WORKDIR_PREFIX}{os.getpid()}-null-def"  # a run still going
    live.mkdir()
    odd = tmp_path / f"{WORKDIR_PREFIX}notapid-x"
    odd.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("keep")
    link = tmp_path / f"{WORKDIR_PREFIX}{dead.pid}-link-x"  # a link is never followed
    link.symlink_to(elsewhere)
    assert sweep_workdirs(tmp_path) == 1
    assert not gone.exists() and live.is_dir() and odd.is_dir()
    assert link.is_symlink() and (elsewhere / "keep").read_text() == "keep"
    assert sweep_workdirs(tmp_path) == 0
