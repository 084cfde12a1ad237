"""Generates fuzz inputs of the wrong shape (5x5 images) with made-up seed indices."""

import numpy as np

from harness.api import GeneratedInputs

TRACKS = ["fuzz"]


class Entry:
    def generate(self, model, clean, budget):
        return GeneratedInputs(x=np.zeros((4, 5, 5, 1)), seed_index=np.arange(4))
