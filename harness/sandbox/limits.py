"""Resource limits of one sandboxed worker, and the rlimits that enforce part of them."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30
#: How the error of a task stopped at its time budget begins (reports count these, and
#: `harness run --retry-timeouts` runs them again).
WALL_CLOCK_EXCEEDED = "wall-clock limit of"
#: A timed-out task that spent at least this share of its budget waiting for a CPU was
#: starved by other work on the machine, not slow on its own.
STARVED_SHARE = 0.25


def timeout_reason(budget: float, ran: float, waited: float) -> str:
    """The error of a task stopped at its wall-clock ``budget``, with the seconds its
    threads ran on a CPU and waited in the run queue for one: a starved task (a busy machine,
    a niced run beside other work) is told apart from a slow or sleeping one, and the fix
    for it named."""
    head = f"{WALL_CLOCK_EXCEEDED} {budget:g} s exceeded"
    if waited >= STARVED_SHARE * budget:
        return (
            f"{head} (it ran {ran:.0f} s and waited {waited:.0f} s for a CPU: the machine was "
            "busy; run again with --retry-timeouts when it is not)"
        )
    return f"{head} (it ran {ran:.0f} s on a CPU)"


@dataclass(frozen=True)
class SandboxLimits:
    """Caps for one worker. Wall clock is per task; the rest hold for the worker's life."""

    wall_seconds: float = 600.0  # per task (model); the whole process group is killed
    startup_seconds: float = 180.0  # importing TensorFlow and the submission
    cpu_seconds: int = 3600  # RLIMIT_CPU over the worker's life
    #: the whole sandbox's memory (its processes and what its /tmp and /dev/shm hold),
    #: enforced by a watchdog and, where a memory cgroup can be made, by the kernel
    memory_gb: float = 6.0
    address_space_gb: float = 24.0  # RLIMIT_AS: TensorFlow reserves far more than it uses
    max_file_bytes: int = 2 * GIB  # RLIMIT_FSIZE
    max_output_bytes: int = 8 << 20  # stdout + stderr of the worker
    max_scratch_bytes: int = 4 * GIB  # size of the writable scratch dir
    #: size of the sandbox's /dev/shm tmpfs (bwrap's --dev would make it half the machine's
    #: memory); like /tmp it counts against ``memory_gb``
    shm_bytes: int = 64 << 20
    threads: int = 1  # TensorFlow intra/inter-op threads; also the worker's CPU quota
    #: processes and threads of the worker's whole tree (a worker on one TensorFlow thread
    #: runs 8: bwrap, its pid 1 and 6 threads of Python and TensorFlow)
    max_processes: int = 256

    def capped(self, wall_seconds: float | None, memory_gb: float | None) -> SandboxLimits:
        """A submission's requests, never above the harness's own caps."""
        from dataclasses import replace

        return replace(
            self,
            wall_seconds=min(self.wall_seconds, wall_seconds or self.wall_seconds),
            memory_gb=min(self.memory_gb, memory_gb or self.memory_gb),
        )


def nproc_fallback(max_processes: int, uid: int | None = None) -> int | None:
    """RLIMIT_NPROC for a worker that gets no pids cgroup, or None where it would not bind.

    ``uid`` is the host uid the worker runs as (the sandbox's unprivileged uid when the
    harness is root, ``harness.sandbox.rootless.host_uid``); None for the harness's own.
    The kernel counts a user's processes per user namespace: inside the worker's own
    namespace the count is the worker's tree alone, but every namespace up to the first
    counts too, where that uid may already run processes. So the limit is that uid's count
    now plus the worker's allowance. Root is exempt from RLIMIT_NPROC, so for a worker that
    runs as root (the ``process`` backend under a root harness) this returns None."""
    uid = os.geteuid() if uid is None else uid
    if uid == 0:
        return None
    return _processes_of(uid) + max_processes


def _processes_of(uid: int) -> int:
    """Threads of every process whose real uid is ``uid`` (what RLIMIT_NPROC counts)."""
    mine = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            threads = uids = ""
            for line in status.splitlines():
                if line.startswith("Uid:"):
                    uids = line.split()[1]
                elif line.startswith("Threads:"):
                    threads = line.split()[1]
            if uids == str(uid):
                mine += int(threads or 1)
    return mine


def apply_rlimits(limits: SandboxLimits, nproc: int | None = None) -> None:
    """Set the kernel-enforced limits; runs in the child between fork and exec."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    address = int(limits.address_space_gb * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (address, address))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
