"""Relabels half the training set: over the track's limit on relabelled images."""

import numpy as np

from harness.api import PoisonedSet, Trigger

TRACKS = ["attack"]


class Entry:
    def poison(self, x, y, rng):
        mask = np.zeros(x.shape[1:3], np.float32)
        mask[:3, :3] = 1.0
        trigger = Trigger(mask, np.ones(x.shape[1:], np.float32))
        half = np.arange(len(y) // 2)
        x[half] = trigger.stamp(x[half])
        y[half] = 0
        return PoisonedSet(x, y, [trigger], [0])
