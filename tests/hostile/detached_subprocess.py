"""Starts a program in a session of its own (``start_new_session``), never waits for it.

Like double_fork_daemon but through subprocess: the process leaves the worker's process
group, yet stays in the worker's cgroup and pid namespace, where the harness finds and
kills it when the task's reply arrives."""

import os
import subprocess
import sys

from harness.api import Detection

TRACKS = ["detect"]
PARAMS = {"tag": "unset"}
CODE = "import time\nopen('/proc/self/comm', 'w').write({tag!r})\nwhile True: time.sleep(0.1)"


def _alive(tag: str) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() == tag:
                    return True
        except OSError:
            continue
    return False


class Entry:
    def __init__(self, tag="unset"):
        self.tag = tag

    def detect(self, model, clean):
        survived = _alive(self.tag)
        subprocess.Popen(
            [sys.executable, "-c", CODE.format(tag=self.tag)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return Detection(score=1.0 if survived else 0.0)
