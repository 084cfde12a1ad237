"""What the harness watches of a sandbox from outside: its processes (the worker's tree, the
sandbox's own pid 1 and core), the memory they hold (resident set, PSS once forked, and the
files in the sandbox's tmpfs mounts), the CPU time its threads ran and waited for, and the
size of a folder. Everything is read from ``/proc`` on the host side, so nothing the
submission does inside can change what is counted."""

from __future__ import annotations

import os
from pathlib import Path

from harness.sandbox.limits import SandboxLimits

#: The sandbox's own tmpfs mounts (bwrap): their files are memory the sandbox holds.
TMPFS_MOUNTS = ("tmp", "dev/shm")


def _children_map() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    children = _children_map()
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def tree_memory_bytes(root: int) -> int:
    """Memory in use by a process and all its descendants.

    One process: its resident set. Several: the sum of their proportional set sizes (PSS),
    which splits each shared page among the processes sharing it; summing resident sets
    would count the copy-on-write pages of every fork of a 1 GiB TensorFlow process once
    per fork, and kill a submission that forks for the memory it does not use."""
    pids = descendants(root)
    if len(pids) <= 3:  # bwrap, its pid 1 and the worker: only the worker holds memory
        page = os.sysconf("SC_PAGE_SIZE")
        total = 0
        for pid in pids:
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
        return total
    return sum(_pss_bytes(pid) for pid in pids)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def sandbox_init(outer: int) -> int | None:
    """The sandbox's pid 1 (outside pid): the one child of the bwrap process ``outer``."""
    kids = _children_map().get(outer, [])
    return kids[0] if len(kids) == 1 else None


def sandbox_core(outer: int) -> tuple[int, int, int] | None:
    """bwrap ``outer``, the sandbox's pid 1 and the program bwrap started in it, once that
    program runs (has left bwrap for its own executable), or None before. pid 1 forks that
    program first of all, and nothing else runs in the sandbox until it does."""
    children = _children_map()
    inits = children.get(outer, [])
    if len(inits) != 1:
        return None
    outer_name = _comm(outer)
    started = [p for p in children.get(inits[0], []) if _comm(p) not in ("", outer_name)]
    return (outer, inits[0], started[0]) if len(started) == 1 else None


def tmpfs_bytes(init: int) -> int:
    """What the sandbox of pid 1 ``init`` holds in its tmpfs mounts (/tmp, /dev/shm), read
    through ``/proc/<init>/root``: memory no process's resident set shows. (A tmpfs file a
    process also maps counts in both; the memory cap errs on the safe side.) 0 until bwrap
    has moved pid 1 into the sandbox's root: before, that path is the host's /tmp."""
    root = f"/proc/{init}/root"
    try:
        inside, host = os.stat(root), os.stat("/")
    except OSError:
        return 0
    if (inside.st_dev, inside.st_ino) == (host.st_dev, host.st_ino):
        return 0
    total = 0
    for mount in TMPFS_MOUNTS:
        try:
            if os.stat(f"{root}/{mount}").st_dev == inside.st_dev:
                continue  # not mounted yet: a folder of the sandbox's root
            st = os.statvfs(f"{root}/{mount}")
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total


def sandbox_memory_bytes(outer: int, init: int | None) -> int:
    """Memory the sandbox of bwrap ``outer`` holds: its processes' and its tmpfs files'."""
    return tree_memory_bytes(outer) + (tmpfs_bytes(init) if init else 0)


def memory_reason(limits: SandboxLimits) -> str:
    return f"memory limit of {limits.memory_gb:g} GiB exceeded"


def tree_schedule(root: int) -> dict[int, tuple[int, int]]:
    """Per thread of a process and its descendants: (ns it ran on a CPU, ns it waited in a
    run queue for one), from ``/proc/<pid>/task/<tid>/schedstat``. Threads that have ended
    are gone from it, so compare two readings thread by thread."""
    out: dict[int, tuple[int, int]] = {}
    for pid in descendants(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                ran, waited = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:2]
                out[int(tid)] = (int(ran), int(waited))
            except (OSError, ValueError):
                continue
    return out


def schedule_since(
    before: dict[int, tuple[int, int]], now: dict[int, tuple[int, int]]
) -> tuple[float, float]:
    """Seconds (ran, waited) the threads in ``now`` spent since ``before`` was read."""
    ran = waited = 0
    for tid, (r, w) in now.items():
        r0, w0 = before.get(tid, (0, 0))
        ran += max(0, r - r0)
        waited += max(0, w - w0)
    return ran / 1e9, waited / 1e9


def _pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def dir_bytes(path: Path) -> int:
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total
