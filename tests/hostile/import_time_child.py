"""Starts a detached process while its module is imported (fork, setsid, fork again), before
the harness has looked at the worker's processes, hoping to be taken for one of the worker's
own and to live on beside every task.

The child names itself PARAMS["tag"], read from the folder's submission.toml (no parameter
reaches a module at import); each task looks for it. The worker's own processes are bwrap,
the sandbox's pid 1 and the worker, taken before the import: anything else is killed after
the import and after each task, so no task finds the child (score 0.0) and nothing with the
tag is left on the machine."""

import os
import re
import time
from pathlib import Path

from harness.api import Detection

TRACKS = ["detect"]
PARAMS = {"tag": "unset"}


def _tag():
    text = (Path(__file__).parent / "submission.toml").read_text()
    found = re.search(r'^tag = "([^"]*)"', text, re.M)
    return found.group(1) if found else "unset"


def _alive(tag):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() == tag:
                    return True
        except OSError:
            continue
    return False


def _spawn(tag):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open("/proc/self/comm", "w") as fh:
                fh.write(tag)
            while True:
                time.sleep(0.1)
        os._exit(0)
    os.wait()


_spawn(_tag())


class Entry:
    def __init__(self, tag="unset"):
        self.tag = tag

    def detect(self, model, clean):
        return Detection(score=1.0 if _alive(self.tag) else 0.0)
