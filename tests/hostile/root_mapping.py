"""Tries a root's powers from inside the sandbox: writes /proc/sys/kernel/core_uses_pid
(the value it read, so nothing changes if the write goes through; core_pattern next to it
would run a program of its choosing as root), then names itself PARAMS["tag"] and lingers
a moment so that the test can see, from the host, which uid its processes run as.

/proc/sys is read-only inside ("Read-only file system"), and a harness running as root
starts bwrap as an unprivileged host uid (65534 by default): the sandbox's processes are
that uid on the host, never root (score 0.0: the write was refused)."""

import sys
import time

from harness.api import Detection

TRACKS = ["detect"]
PARAMS = {"tag": "unset", "linger": 3.0}
TARGET = "/proc/sys/kernel/core_uses_pid"


class Entry:
    def __init__(self, tag="unset", linger=3.0):
        self.tag = tag
        self.linger = linger

    def detect(self, model, clean):
        wrote = False
        try:
            with open(TARGET) as fh:
                value = fh.read()
            with open(TARGET, "w") as fh:
                fh.write(value)
            wrote = True
            print(f"wrote {TARGET}", file=sys.stderr, flush=True)
        except OSError as exc:
            print(f"write to {TARGET} refused: {exc.strerror}", file=sys.stderr, flush=True)
        with open("/proc/self/comm", "w") as fh:
            fh.write(self.tag)
        time.sleep(self.linger)
        return Detection(score=1.0 if wrote else 0.0)
