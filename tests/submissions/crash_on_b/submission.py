"""Hostile: kills its own worker on models of architecture b (5x5 first kernel)."""

import os

from harness.api import Detection


class CrashOnB:
    def detect(self, model, clean):
        if model.get_layer("conv_1").get_weights()[0].shape[0] == 5:
            os._exit(3)
        return Detection(score=0.25)
