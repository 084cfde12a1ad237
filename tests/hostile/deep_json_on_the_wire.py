"""Writes a well-framed message to the protocol pipe whose JSON nests 200,000 deep.

Aimed at the harness's own JSON parser (a recursion error in the reader thread would leave
the harness waiting forever): the reader turns it into a protocol violation."""

import os
import struct
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
        body = b"[" * 200_000 + b"]" * 200_000
        os.write(reply_pipe(), struct.pack(">I", len(body)) + body)
        time.sleep(30)
        return Detection(score=1.0)
