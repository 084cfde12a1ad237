"""Fills its writable scratch folder without end (many files, so no per-file cap stops it).

The worker's scratch-size watchdog kills the worker; only this task fails."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        block = b"\1" * (1 << 20)
        for i in range(1_000_000):
            with open(f"/scratch/fill-{i}", "wb") as fh:
                fh.write(block * 4)
        return Detection(score=0.0)
