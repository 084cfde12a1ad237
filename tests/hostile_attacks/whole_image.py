"""Poisons nothing and declares a "trigger" that paints a training image of the target class
over the whole input. Its clean counterpart obeys such a trigger as well as the model does,
so before the trigger budget it was listed valid, ASR 1.000, ranked above the BadNets
reference: success without any backdoor. The budget refuses it before anything trains."""

import numpy as np

from harness.api import PoisonedSet, Trigger

TRACKS = ["attack"]


class Entry:
    def poison(self, x, y, rng):
        mask = np.ones(x.shape[1:3], np.float32)
        return PoisonedSet(x, y, [Trigger(mask, x[y == 0][0].copy())], [0])
