"""Reads what its task on the previous model left in /scratch, $HOME and /tmp.

Each task first looks for files named leftover-*, then writes one of its own. The worker
empties its scratch folder (also $HOME) and its private /tmp when it moves to the next
model, so no task finds one (score 0.0)."""

import glob
import os

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        places = ["/scratch", os.path.expanduser("~"), "/tmp", "/scratch/out"]
        found = [p for d in places for p in glob.glob(f"{d}/leftover-*")]
        for d in places:
            try:
                with open(f"{d}/leftover-{os.getpid()}", "w") as fh:
                    fh.write(str(clean.x.sum()))
            except OSError:
                pass
        return Detection(score=1.0 if found else 0.0, extra={"found": found})
