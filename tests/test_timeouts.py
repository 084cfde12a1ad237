"""A task stopped at its wall-clock budget says whether it was slow or starved: the seconds
its threads ran on a CPU and waited in the run queue for one, read from the kernel's
per-thread schedstat, so a grader can tell a hostile sleeper or a slow defense from an
honest task that a busy machine (a niced run beside other work) never gave a CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.sandbox.limits import WALL_CLOCK_EXCEEDED, timeout_reason
from harness.sandbox.watch import schedule_since, tree_schedule

SPIN = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass"


def test_a_starved_task_is_named_as_such_and_its_fix_given():
    starved = timeout_reason(300, ran=40.2, waited=250.0)
    assert starved.startswith(f"{WALL_CLOCK_EXCEEDED} 300 s exceeded")  # --retry-timeouts finds it
    assert "ran 40 s and waited 250 s for a CPU" in starved and "--retry-timeouts" in starved
    slow = timeout_reason(300, ran=295.0, waited=4.0)
    assert slow == f"{WALL_CLOCK_EXCEEDED} 300 s exceeded (it ran 295 s on a CPU)"
    sleeper = timeout_reason(10, ran=0.01, waited=0.0)
    assert sleeper.endswith("(it ran 0 s on a CPU)")


@pytest.mark.skipif(
    not Path("/proc/self/schedstat").is_file(),
    reason="kernel without schedstat (CONFIG_SCHED_INFO)",
)
def test_a_process_tree_s_run_and_wait_times_are_read_from_every_thread():
    """Two spinners pinned to one CPU under a shell: each runs about half the time and waits
    the other half; the reading covers the shell's children, not only the shell."""

    def one_cpu() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    code = f"{sys.executable} -c '{SPIN}'"
    shell = subprocess.Popen(["/bin/sh", "-c", f"{code} & {code} & wait"], preexec_fn=one_cpu)
    try:
        before = tree_schedule(shell.pid)
        time.sleep(1.0)
        after = tree_schedule(shell.pid)
    finally:
        shell.wait(timeout=30)
    assert len(after) >= 3  # the shell and both spinners
    ran, waited = schedule_since(before, after)
    assert ran >= 0.3, (ran, waited)
    assert waited >= 0.2, (ran, waited)  # one CPU for two busy processes: each queued


def test_threads_that_ended_do_not_count_against_the_rest():
    before = {1: (5_000_000_000, 1_000_000_000), 2: (1_000_000_000, 0)}
    now = {1: (6_000_000_000, 3_000_000_000), 3: (500_000_000, 250_000_000)}  # 2 ended, 3 new
    assert schedule_since(before, now) == (1.5, 2.25)
