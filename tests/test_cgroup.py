"""A sandbox's control group follows the niceness of the process that makes it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.sandbox import cgroup

#: Make a group at nice N, print the CPU weight it got (v1 cpu.shares or v2 cpu.weight).
PROBE = """
import os, sys
os.nice(int(sys.argv[1]))
from harness.sandbox import cgroup
group = cgroup.create(64, 1.0)
if group is None:
    print("none")
    raise SystemExit
try:
    for folder in group.folders:
        for key in ("cpu.shares", "cpu.weight"):
            if (folder / key).is_file():
                print(key, (folder / key).read_text().strip())
finally:
    group.remove()
"""


def _weight(niceness: int) -> tuple[str, int] | None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(niceness)], capture_output=True, text=True, check=True
    ).stdout.split()
    return None if out == ["none"] or not out else (out[0], int(out[1]))


def test_a_niced_process_makes_niced_groups():
    if not any("cpu" in m.controllers for m in cgroup.mounts()):
        pytest.skip("no cgroup cpu controller here")
    plain, niced = _weight(0), _weight(10)
    if plain is None or niced is None:
        pytest.skip("this process may not create cgroups")
    key, default = plain
    assert default == {"cpu.shares": 1024, "cpu.weight": 100}[key]
    # nice 10 weighs 110 in the kernel's table (1024 / 1.25**10, rounded)
    assert niced == (key, {"cpu.shares": 110, "cpu.weight": 11}[key])
