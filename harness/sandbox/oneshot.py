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

from harness.sandbox.backends import WorkerDirs, bwrap_command, process_command, resolve_backend
from harness.sandbox.client import (
    POLL_SECONDS,
    confine,
    schedule_since,
    tree_memory_bytes,
    tree_schedule,
)
from harness.sandbox.limits import SandboxLimits, timeout_reason

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
    if resolve_backend(backend) == "bwrap":
        argv, _ = bwrap_command(dirs, limits.threads, 256 << 20, program)
        env: dict[str, str] = {}
    else:
        argv, inner, env = process_command(dirs, limits.threads, program)
        argv = [
            a.replace("/inbox", inner["inbox"]).replace("/scratch", inner["scratch"]) for a in argv
        ]
    group, preexec = confine(limits)
    # Its output goes to files outside the folders it can see.
    with tempfile.TemporaryDirectory(prefix="harness-oneshot-") as logs:
        out, err = Path(logs) / "stdout", Path(logs) / "stderr"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env, cwd=answers,
                start_new_session=True, preexec_fn=preexec,
            )  # fmt: skip
            breach = _police(proc, limits, [out, err])
        if group is not None:
            group.remove()
        texts = [p.read_bytes()[-OUTPUT_BYTES:].decode("utf-8", "replace") for p in (out, err)]
    code = proc.returncode if proc.returncode is not None else -9
    return OneShot(code, texts[0], texts[1], breach)


def _police(proc: subprocess.Popen[bytes], limits: SandboxLimits, logs: list[Path]) -> str | None:
    """Wait for ``proc``; kill its process group at the first limit it breaks."""
    deadline = time.monotonic() + limits.wall_seconds
    rss_cap = limits.memory_gb * (1 << 30)
    breach = None
    before = tree_schedule(proc.pid)
    while proc.poll() is None:
        if time.monotonic() > deadline:
            ran, waited = schedule_since(before, tree_schedule(proc.pid))
            breach = timeout_reason(limits.wall_seconds, ran, waited)
        elif tree_memory_bytes(proc.pid) > rss_cap:
            breach = f"memory limit of {limits.memory_gb:g} GiB exceeded"
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
    return breach
