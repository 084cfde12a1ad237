"""A control group per sandbox worker: a cap on its whole process tree's process count,
CPU share and memory, and a way to kill every process of it, however it detached.

The kernel enforces the caps on the group as a whole: ``pids.max`` makes a fork or thread
bomb fail with EAGAIN at the cap, a CPU quota of ``cpus`` cores keeps a worker spinning in
a hundred threads from starving the rest of the machine, and a memory limit (where the
memory controller is there) has the OOM killer end a worker whose processes and tmpfs
files (its /tmp and /dev/shm: their pages are charged to the group that wrote them) grow
past it. A process that daemonises (``setsid``, a double fork) stays in the group, so
:meth:`WorkerGroup.kill` reaches it.

Both cgroup hierarchies are handled: v2 (one ``cgroup2`` mount, the ``pids``, ``cpu`` and
``memory`` controllers enabled for our cgroup's children) and v1 (a mount per controller). Creating
a group needs write access to our own cgroup's folder, which root has on most machines and
containers; where there is none, :func:`create` returns None and the caller falls back to
``RLIMIT_NPROC`` (see ``harness.sandbox.limits``), and docs/SECURITY.md says what that
leaves open.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

#: CFS period of the CPU quota (the kernel's default), in microseconds.
CPU_PERIOD_US = 100_000
#: The controllers a worker's group uses.
CONTROLLERS = frozenset({"pids", "cpu", "memory"})
_COUNTER = itertools.count()


@dataclass(frozen=True)
class Mount:
    """One cgroup hierarchy this process can see: where it is mounted, which controllers
    it carries, and our own cgroup's folder in it."""

    version: int
    controllers: frozenset[str]
    own: Path


def _own_paths() -> dict[str, str]:
    """/proc/self/cgroup: controller (or "" for v2) -> our cgroup's path in it."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def mounts() -> list[Mount]:
    """The cgroup hierarchies with a pids, cpu or memory controller, from
    /proc/self/mountinfo."""
    try:
        own = _own_paths()
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except (OSError, ValueError):
        return []
    found = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, (fstype, _, options) = left.split(), right.split(" ", 2)
        point, root = Path(fields[4]), fields[3]
        if fstype == "cgroup2" and "" in own:
            try:
                enabled = (point / own[""].lstrip("/") / "cgroup.subtree_control").read_text()
            except OSError:
                continue
            names = frozenset(enabled.split()) & CONTROLLERS
            found.append(Mount(2, names, _inside(point, root, own[""])))
        elif fstype == "cgroup":
            # Controllers mounted together share one folder (and one line of /proc/self/cgroup).
            names = frozenset(n for n in frozenset(options.split(",")) & CONTROLLERS if n in own)
            if names:
                first = own[min(names)]
                found.append(Mount(1, names, _inside(point, root, first)))
    return [m for m in found if m.controllers]


def _inside(point: Path, root: str, own: str) -> Path:
    """Our cgroup's folder under a mount whose root is ``root`` in the hierarchy."""
    rel = os.path.relpath(own, root) if own.startswith(root) else own.lstrip("/")
    return (point / rel).resolve() if rel != "." else point


class WorkerGroup:
    """The cgroup folder(s) of one worker: created with its caps, joined by the worker
    between fork and exec, killed and removed with the worker."""

    def __init__(self, folders: list[Path], limits: dict[str, int]) -> None:
        self.folders = folders
        self.limits = limits

    def join(self) -> bool:
        """Move the calling process into the group (runs in the child before exec); False
        where the kernel refuses (cgroup v2 also wants write access to the common ancestor
        of the two groups), and the caller falls back to RLIMIT_NPROC."""
        pid = str(os.getpid())
        try:
            for folder in self.folders:
                (folder / "cgroup.procs").write_text(pid)
        except OSError:
            return False
        return True

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            try:
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                continue
        return found

    def limit_hits(self) -> int:
        """How often a fork or clone failed at the process cap."""
        for folder in self.folders:
            try:
                for line in (folder / "pids.events").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "max":
                        return int(value)
            except (OSError, ValueError):
                continue
        return 0

    def oom_kills(self) -> int:
        """How many of the group's processes the OOM killer ended at its memory limit (v2
        ``memory.events``, v1 ``memory.oom_control``)."""
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    lines = (folder / name).read_text().splitlines()
                except OSError:
                    continue
                for line in lines:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        return int(value)
        return 0

    def kill(self, keep: set[int] | frozenset[int] = frozenset()) -> int:
        """SIGKILL every process of the group but ``keep``, until none is left (a fork bomb
        racing the loop runs out of room at the cap); how many were killed."""
        killed = 0
        for _ in range(200):
            victims = self.pids() - set(keep)
            if not victims:
                break
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)
        return killed

    def remove(self) -> None:
        """Kill what is left and delete the group's folders (the kernel frees them once
        their last process is reaped, so this retries for a moment)."""
        self.kill()
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            sweep(folder.parent)  # and what killed harness processes left beside it


def sweep(parent: Path) -> int:
    """Remove the groups a harness process that was killed (SIGKILL, OOM) left behind:
    empty ones named for a process that no longer exists (one that still holds processes
    may belong to a harness this process cannot see). How many there were."""
    removed = 0
    for folder in parent.glob("harness-*-*"):
        try:
            owner = int(folder.name.split("-")[1])
        except ValueError:
            continue
        if not Path(f"/proc/{owner}").exists() and not WorkerGroup([folder], {}).pids():
            try:
                folder.rmdir()
                removed += 1
            except OSError:
                continue
    return removed


def nice_weight() -> int | None:
    """The scheduler weight of this process's nice value (as the kernel's table: 1024 at nice 0,
    about 1.25x less per step, 15 at 19), or None at nice 0. A sandbox's group competes with the
    rest of the machine as one entity of the default weight whatever the nice value of the
    process that made it, so a niced run (a long leaderboard beside someone's tests) gives
    its groups this weight to stay niced."""
    niceness = os.nice(0)
    return None if niceness == 0 else max(2, round(1024 / 1.25**niceness))


def create(max_processes: int, cpus: float, memory_bytes: int | None = None) -> WorkerGroup | None:
    """A fresh group capped at ``max_processes`` tasks (processes and threads), ``cpus``
    cores and ``memory_bytes`` (None: no memory cap), or None where this process may not
    create cgroups. A hierarchy that refuses one cap keeps the others."""
    name = f"harness-{os.getpid()}-{next(_COUNTER)}"
    folders: list[Path] = []
    applied: dict[str, int] = {}
    quota = max(1000, int(cpus * CPU_PERIOD_US))
    weight = nice_weight()
    for mount in mounts():
        sweep(mount.own)
        folder = mount.own / name
        try:
            folder.mkdir()
        except OSError:
            continue
        settings = []
        if "pids" in mount.controllers and "pids" not in applied:
            settings.append(("pids.max", str(max_processes), "pids", max_processes))
        if "cpu" in mount.controllers and "cpu" not in applied:
            value = f"{quota} {CPU_PERIOD_US}" if mount.version == 2 else str(quota)
            key = "cpu.max" if mount.version == 2 else "cpu.cfs_quota_us"
            settings.append((key, value, "cpu", quota))
        if "memory" in mount.controllers and "memory" not in applied and memory_bytes:
            key = "memory.max" if mount.version == 2 else "memory.limit_in_bytes"
            settings.append((key, str(memory_bytes), "memory", memory_bytes))
        for key, value, controller, number in settings:
            try:
                (folder / key).write_text(value)
                applied[controller] = number
            except OSError:
                continue
            if controller == "memory":
                _no_swap(folder, mount.version, number)
        if "cpu" in mount.controllers and weight is not None:
            _set_weight(folder, mount.version, weight)
        folders.append(folder)
    if "pids" not in applied:
        WorkerGroup(folders, applied).remove()
        return None
    return WorkerGroup(folders, applied)


def _no_swap(folder: Path, version: int, memory_bytes: int) -> None:
    """Keep a memory-capped group from swapping past its cap (where the machine swaps and
    swap is accounted): v2 ``memory.swap.max`` 0, v1 memory+swap at the memory cap."""
    key, value = (
        ("memory.swap.max", "0")
        if version == 2
        else ("memory.memsw.limit_in_bytes", str(memory_bytes))
    )
    try:
        (folder / key).write_text(value)
    except OSError:
        pass


def _set_weight(folder: Path, version: int, weight: int) -> None:
    """Write a CFS weight (1024 = nice 0) as the hierarchy spells it: cpu.shares in v1,
    cpu.weight (100 = nice 0, 1-10000) in v2. A refusal leaves the default weight."""
    if version == 1:
        key, value = "cpu.shares", weight
    else:
        key, value = "cpu.weight", min(10_000, max(1, round(weight * 100 / 1024)))
    try:
        (folder / key).write_text(str(value))
    except OSError:
        pass
