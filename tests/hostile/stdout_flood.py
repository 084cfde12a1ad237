"""Prints 64 MiB of lines to stdout (which the worker sends to stderr).

The output limit (8 MiB per worker) kills the worker; the protocol stream is untouched,
since stdout never was the protocol's pipe."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        line = "flood " * 170
        for _ in range(64 * 1024):
            print(line)
        return Detection(score=0.0)
