"""Fills /dev/shm, a second /tmp: bwrap's --dev makes it a tmpfs of half the machine's
memory, which no process's resident set shows. It asks for 1 GiB of memory and writes up to
1.5 GiB there, and on each model first lists what an earlier task left in it.

/dev/shm is a tmpfs of 64 MiB per sandbox (SandboxLimits.shm_bytes) whose files count
against the memory cap with /tmp's: the writes end with ENOSPC and the task answers. The
worker empties /dev/shm when it moves to the next model, so the task on the second model
finds nothing (extra found = [])."""

import os

from harness.api import Detection

TRACKS = ["detect"]
RESOURCES = {"memory_gb": 1}
WANTED = 1536 << 20


class Entry:
    def detect(self, model, clean):
        found = sorted(os.listdir("/dev/shm"))
        block, written = b"\1" * (1 << 20), 0
        try:
            with open(f"/dev/shm/fill-{os.getpid()}", "wb") as fh:
                while written < WANTED:
                    fh.write(block)
                    fh.flush()
                    written += len(block)
        except OSError as exc:
            print(f"/dev/shm full after {written >> 20} MiB: {exc.strerror}", flush=True)
        return Detection(score=1.0 if found else 0.0, extra={"found": found, "mib": written >> 20})
