"""Reports as its "reconstructed trigger" a mask covering the whole image with a clean image
of the target class (``PARAMS["target"]``) as its pattern. Stamped, every image becomes
that target-class image: any model, backdoored or not, sends it to the target, so its
trigger ASR would be the model's accuracy on one image, with nothing reconstructed.

The harness holds a reported trigger to a mask budget (twice the true trigger's L1 norm):
over it, the trigger scores IoU 0 and ASR 0."""

import numpy as np

from harness.api import Detection, Trigger

TRACKS = ["detect", "trigger"]
PARAMS = {"target": 0}


class Entry:
    def __init__(self, target=0):
        self.target = target

    def detect(self, model, clean):
        image = clean.x[int(np.flatnonzero(clean.y == self.target)[0])]
        mask = np.ones(clean.x.shape[1:3], np.float32)
        return Detection(
            score=0.9, target_labels=[self.target], trigger=Trigger(mask, np.array(image))
        )
