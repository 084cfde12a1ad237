"""An attack hand-in that replaces its poisoned-set folder (/scratch/poisoned) by a symbolic
link to a host path (``PARAMS["target"]``, under /tmp), made in its own /tmp too so that
its arrays save inside the sandbox. On the host the harness would read the poisoned set
from the host folder of that name.

The poisoned set is read back through harness.sandbox.readback: the instance is invalid
with "poisoned is a symbolic link: links are refused"."""

import os
import shutil

import numpy as np

from harness.api import PoisonedSet, Trigger

TRACKS = ["attack"]
PARAMS = {"target": "/tmp/nonexistent"}


class Entry:
    def __init__(self, target="/tmp/nonexistent"):
        self.target = target

    def poison(self, x, y, rng):
        shutil.rmtree("/scratch/poisoned", ignore_errors=True)
        os.makedirs(self.target, exist_ok=True)
        os.symlink(self.target, "/scratch/poisoned")
        h, w, c = x.shape[1:]
        mask = np.zeros((h, w), np.float32)
        mask[-3:, -3:] = 1.0
        return PoisonedSet(x, y, [Trigger(mask, np.ones((h, w, c), np.float32))], [0])
