"""Returns a one-pixel trigger whose pattern is 1e6: far outside the input range [0, 1].

Stamped, it would drive any model to some label and buy a trigger ASR no real trigger has;
the harness refuses a pattern outside the model's input range."""

import numpy as np

from harness.api import Detection, Trigger

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        h, w, c = clean.x.shape[1:]
        mask = np.zeros((h, w))
        mask[0, 0] = 1.0
        return Detection(score=0.9, trigger=Trigger(mask, np.full((h, w, c), 1e6)))
