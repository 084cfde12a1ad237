"""Hostile: hangs on arch-b models, grabs memory on the pixel model, floods output otherwise."""

import sys
import time

import numpy as np

from harness.api import Detection


class HangAndHog:
    def detect(self, model, clean):
        kernel = model.get_layer("conv_1").get_weights()[0]
        if kernel.shape[0] == 5:
            while True:
                time.sleep(1)
        if clean.x.shape[0] == 0:
            sys.stderr.write("x" * (64 << 20))
        hog = [np.ones(1 << 27) for _ in range(40)]  # 40 GiB of touched pages, if allowed
        return Detection(score=float(len(hog)) / 100)
