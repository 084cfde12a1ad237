"""Returns a 3x3 trigger mask and a flat pattern for 28x28x1 inputs."""

import numpy as np

from harness.api import Detection, Trigger

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        return Detection(score=0.5, trigger=Trigger(np.ones((3, 3)), np.ones(784)))
