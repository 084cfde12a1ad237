"""Repairs nothing, and predicts one NaN-filled row of 3 scores for every batch."""

import numpy as np

TRACKS = ["repair"]


class Entry:
    def repair(self, model, clean):
        self.model = model

    def predict(self, x):
        return np.full((1, 3), np.nan)
