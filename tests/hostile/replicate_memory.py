"""Remembers, in a module-level variable, what earlier tasks of its worker saw, hoping to
answer a later replicate (`harness run --seeds K`) from what an earlier one was shown.

Each replicate is meant to be a fresh instance of the submission: the harness gives every
replicate a worker of its own, so the memory is empty when replicate 1 starts."""

import sys

from harness.api import Detection

TRACKS = ["detect"]
SEEN: list[str] = []


class Entry:
    def detect(self, model, clean):
        print(f"models seen before this task: {len(SEEN)}", file=sys.stderr, flush=True)
        SEEN.append(str(model))
        return Detection(score=0.5)
