"""Daemonises a process that outlives its task (fork, setsid, fork again), then answers.

The daemon names itself PARAMS["tag"]; on the next model the submission looks for it. The
harness kills every process a task leaves behind when its reply arrives, so the daemon is
gone by then (score 0.0), and nothing with the tag is left on the machine afterwards."""

import os
import time

from harness.api import Detection

TRACKS = ["detect"]
PARAMS = {"tag": "unset"}


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
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                with open("/proc/self/comm", "w") as fh:
                    fh.write(self.tag)
                while True:
                    time.sleep(0.1)
            os._exit(0)
        os.wait()
        return Detection(score=1.0 if survived else 0.0)
