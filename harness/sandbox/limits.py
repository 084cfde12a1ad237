"""Resource limits of one sandboxed worker, and the rlimits that enforce part of them."""

from __future__ import annotations

import resource
from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class SandboxLimits:
    """Caps for one worker. Wall clock is per task; the rest hold for the worker's life."""

    wall_seconds: float = 600.0  # per task (model); the whole process group is killed
    startup_seconds: float = 180.0  # importing TensorFlow and the submission
    cpu_seconds: int = 3600  # RLIMIT_CPU over the worker's life
    memory_gb: float = 6.0  # resident set of the whole sandbox, enforced by a watchdog
    address_space_gb: float = 24.0  # RLIMIT_AS: TensorFlow reserves far more than it uses
    max_file_bytes: int = 2 * GIB  # RLIMIT_FSIZE
    max_output_bytes: int = 8 << 20  # stdout + stderr of the worker
    max_scratch_bytes: int = 4 * GIB  # size of the writable scratch dir
    threads: int = 1  # TensorFlow intra/inter-op threads

    def capped(self, wall_seconds: float | None, memory_gb: float | None) -> SandboxLimits:
        """A submission's requests, never above the harness's own caps."""
        from dataclasses import replace

        return replace(
            self,
            wall_seconds=min(self.wall_seconds, wall_seconds or self.wall_seconds),
            memory_gb=min(self.memory_gb, memory_gb or self.memory_gb),
        )


def apply_rlimits(limits: SandboxLimits) -> None:
    """Set the kernel-enforced limits; runs in the child between fork and exec."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    address = int(limits.address_space_gb * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (address, address))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
