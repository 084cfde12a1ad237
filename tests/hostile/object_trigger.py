"""Returns a trigger mask that is an object array (numpy would need a pickle to save it)."""

import numpy as np

from harness.api import Detection, Trigger

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        h, w, c = clean.x.shape[1:]
        mask = np.empty((h, w), dtype=object)
        mask[:] = 0.5
        return Detection(score=0.5, trigger=Trigger(mask, np.zeros((h, w, c))))
