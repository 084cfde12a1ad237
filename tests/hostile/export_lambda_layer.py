"""Exports a GoodNet with a Lambda layer: arbitrary Python that plain load_model runs only
with safe_mode off (it would run in the grader's process)."""

import keras
import numpy as np

TRACKS = ["repair"]


class Entry:
    def repair(self, model, clean):
        self.model = model

    def predict(self, x):
        return np.argmax(self.model.predict(x, verbose=0), axis=1)

    def export(self):
        n = self.model.outputs[0].shape[-1]
        inputs = keras.Input(self.model.inputs[0].shape[1:])
        probs = self.model(inputs)
        extra = keras.layers.Lambda(lambda p: p[:, :1] * 0.0)(probs)
        return keras.Model(inputs, keras.layers.Concatenate()([probs, extra]), name=f"g{n}")
