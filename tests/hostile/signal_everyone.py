"""Sends SIGKILL to every process it can see, then to -1 (every process it may signal).

In its own pid namespace it sees only its sandbox: the signals reach nothing outside, and
the namespace's init ignores them, so the task even answers. (Never run this case under
the `process` backend: there, as root, it would kill the machine.)"""

import os
import signal

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        me, hit = os.getpid(), 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) != me:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    hit += 1
                except OSError:
                    pass
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        return Detection(score=0.0, extra={"signalled": hit})
