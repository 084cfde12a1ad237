"""Hands back only its poisoned images, not the whole training set: image i is no longer
training image i, so no counterpart can be trained on the same images."""

import numpy as np

from harness.api import PoisonedSet, Trigger

TRACKS = ["attack"]


class Entry:
    def poison(self, x, y, rng):
        mask = np.zeros(x.shape[1:3], np.float32)
        mask[:3, :3] = 1.0
        trigger = Trigger(mask, np.ones(x.shape[1:], np.float32))
        return PoisonedSet(trigger.stamp(x[:100]), np.zeros(100, np.int64), [trigger], [0])
