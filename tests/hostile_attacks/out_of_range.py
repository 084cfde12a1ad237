"""Hands back its images scaled to 0..255: outside the input range."""

import numpy as np

from harness.api import PoisonedSet, Trigger

TRACKS = ["attack"]


class Entry:
    def poison(self, x, y, rng):
        mask = np.zeros(x.shape[1:3], np.float32)
        mask[:3, :3] = 1.0
        return PoisonedSet(x * 255.0, y, [Trigger(mask, np.ones(x.shape[1:], np.float32))], [0])
