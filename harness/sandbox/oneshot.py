"""One program run once in a sandbox of its own, with no submission code in it.

For the harness's checks of files a submission produced (an exported GoodNet): the file
is untrusted, so it is parsed inside the same walls as the submission's worker (bwrap, the
worker's limits, a pids cgroup), with only the file and the check's inputs visible
read-only and one writable folder for the check's answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.sandbox import cgroup
from harness.sandbox.backends import WorkerDirs, bwrap_command, process_command, resolve_backend
from harness.sandbox.client import POLL_SECONDS, confine
from harness.sandbox.limits import GIB, SandboxLimits, timeout_reason
from harness.sandbox.watch import (
    memory_reason,
    sandbox_init,
    sandbox_memory_bytes,
    schedule_since,
    tree_schedule,
)

OUTPUT_BYTES = 1 << 20


@dataclass(frozen=True)
class OneShot:
    returncode: int
    stdout: str
    stderr: str
    breach: str | None  # the limit that stopped it, if one did


def run_once(
    program: list[str],
    inputs: Path,
    answers: Path,
    limits: SandboxLimits,
    backend: str = "auto",
) -> OneShot:
    """Run ``program`` (its paths as seen inside: ``/inbox`` for ``inputs``, read-only,
    ``/scratch`` for ``answers``) under ``limits``; the wall clock is
    ``limits.wall_seconds``."""
    dirs = WorkerDirs(None, inputs, answers)
    isolated = resolve_backend(backend) == "bwrap"
    if isolated:
        launch = bwrap_command(dirs, limits.threads, 256 << 20, limits.shm_bytes, program)
    else:
        launch = process_command(dirs, limits.threads, program)
        inner = launch.inner
        launch.argv = [
            a.replace("/inbox", inner["inbox"]).replace("/scratch", inner["scratch"])
            for a in launch.argv
        ]
    group, preexec = confine(limits, launch)
    # Its output goes to files outside the folders it can see.
    with tempfile.TemporaryDirectory(prefix="harness-oneshot-") as logs:
        out, err = Path(logs) / "stdout", Path(logs) / "stderr"
        try:
            with open(out, "wb") as fo, open(err, "wb") as fe:
                proc = subprocess.Popen(
                    launch.argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                    env=launch.env, cwd="/" if isolated else answers, start_new_session=True,
                    preexec_fn=preexec,
                )  # fmt: skip
                breach = _police(proc, limits, [out, err], group, isolated)
        finally:
            if group is not None:
                group.remove()
            launch.close()
        texts = [p.read_bytes()[-OUTPUT_BYTES:].decode("utf-8", "replace") for p in (out, err)]
    code = proc.returncode if proc.returncode is not None else -9
    return OneShot(code, texts[0], texts[1], breach)


def _police(
    proc: subprocess.Popen[bytes],
    limits: SandboxLimits,
    logs: list[Path],
    group: cgroup.WorkerGroup | None,
    isolated: bool,
) -> str | None:
    """Wait for ``proc``; kill its process group at the first limit it breaks (memory: its
    processes and, under bwrap, its tmpfs files; or an OOM kill in its cgroup)."""
    deadline = time.monotonic() + limits.wall_seconds
    cap = limits.memory_gb * GIB
    breach = None
    before = tree_schedule(proc.pid)
    init: int | None = None
    while proc.poll() is None:
        init = init or (sandbox_init(proc.pid) if isolated else None)
        if time.monotonic() > deadline:
            ran, waited = schedule_since(before, tree_schedule(proc.pid))
            breach = timeout_reason(limits.wall_seconds, ran, waited)
        elif sandbox_memory_bytes(proc.pid, init) > cap or (group and group.oom_kills()):
            breach = memory_reason(limits)
        elif sum(p.stat().st_size for p in logs) > limits.max_output_bytes:
            breach = f"output limit of {limits.max_output_bytes} bytes exceeded"
        if breach:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            break
        time.sleep(POLL_SECONDS)
    if breach is None and group is not None and group.oom_kills():
        breach = memory_reason(limits)  # killed at the cap between two looks
    return breach
