"""Writes straight to the worker's protocol pipe: a message header announcing 4 GiB.

The submission runs in the worker's process, so it can find the pipe the replies travel on
(the only write-only pipe other than stderr). The harness's reader refuses the header and
kills the worker: a protocol violation, this task failed, nothing else read."""

import os
import time

from harness.api import Detection

TRACKS = ["detect"]


def reply_pipe() -> int:
    stderr = os.readlink("/proc/self/fd/2")
    for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            with open(f"/proc/self/fdinfo/{fd}") as fh:
                info = dict(line.split(":", 1) for line in fh if ":" in line)
            flags = int(info["flags"].strip(), 8)
        except OSError:
            continue
        if target.startswith("pipe:") and target != stderr and flags & 3 == os.O_WRONLY:
            return fd
    raise RuntimeError("no reply pipe found")


class Entry:
    def detect(self, model, clean):
        os.write(reply_pipe(), b"\xff\xff\xff\xff" + b"{" * 64)
        time.sleep(30)
        return Detection(score=1.0)
