"""A sandbox's control group follows the niceness of the process that makes it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.sandbox import cgroup

#: Raise the niceness by N, make a group, print the niceness and the CPU weight the group
#: got (v1 cpu.shares or v2 cpu.weight).
PROBE = """
import os, sys
niceness = os.nice(int(sys.argv[1]))
from harness.sandbox import cgroup
group = cgroup.create(64, 1.0)
if group is None:
    print("none")
    raise SystemExit
try:
    for folder in group.folders:
        for key in ("cpu.shares", "cpu.weight"):
            if (folder / key).is_file():
                print(niceness, key, (folder / key).read_text().strip())
finally:
    group.remove()
"""
#: The kernel's weight at nice 0 in each hierarchy's unit.
DEFAULT = {"cpu.shares": 1024, "cpu.weight": 100}


def _weight(more: int) -> tuple[int, str, int] | None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(more)], capture_output=True, text=True, check=True
    ).stdout.split()
    return None if out == ["none"] or not out else (int(out[0]), out[1], int(out[2]))


def test_a_niced_process_makes_niced_groups():
    if not any("cpu" in m.controllers for m in cgroup.mounts()):
        pytest.skip("no cgroup cpu controller here")
    probes = [_weight(0), _weight(10)]
    if None in probes:
        pytest.skip("this process may not create cgroups")
    for niceness, key, weight in filter(None, probes):
        # the kernel's table: 1024 at nice 0, 1.25x less per step (110 at nice 10)
        expected = round(1024 / 1.25**niceness)
        if key == "cpu.weight":
            expected = round(expected * 100 / 1024)
        assert weight == (DEFAULT[key] if niceness == 0 else expected), (niceness, key)
    assert probes[1] is not None and probes[1][0] >= 10  # the second group was made niced


#: Touches MIB MiB of memory, then exits.
HOG = "import sys; block = b'x' * (int(sys.argv[1]) << 20); print(len(block))"


def test_a_memory_capped_group_ends_what_outgrows_it():
    """The kernel holds a worker's group to its memory cap (the OOM killer ends the
    process that outgrows it), and the group counts the kill: the harness reports it as
    the memory limit."""
    if not any("memory" in m.controllers for m in cgroup.mounts()):
        pytest.skip("no cgroup memory controller here")
    group = cgroup.create(64, 1.0, 128 << 20)
    if group is None or "memory" not in group.limits:
        pytest.skip("this process may not create memory-capped cgroups")
    try:
        small = subprocess.run(
            [sys.executable, "-c", HOG, "16"], preexec_fn=group.join, capture_output=True
        )
        assert small.returncode == 0 and group.oom_kills() == 0, small.stderr
        big = subprocess.run(
            [sys.executable, "-c", HOG, "512"], preexec_fn=group.join, capture_output=True
        )
        assert big.returncode == -9, (big.returncode, big.stderr[-300:])
        assert group.oom_kills() >= 1
    finally:
        group.remove()
