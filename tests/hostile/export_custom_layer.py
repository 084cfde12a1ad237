"""Exports a GoodNet holding a layer class of its own, which no grader's Python knows."""

import keras
import numpy as np

TRACKS = ["repair"]


@keras.saving.register_keras_serializable(package="hostile")
class Reject(keras.layers.Layer):
    def call(self, p):
        return keras.ops.concatenate([p, p[:, :1] * 0.0], axis=-1)


class Entry:
    def repair(self, model, clean):
        self.model = model

    def predict(self, x):
        return np.argmax(self.model.predict(x, verbose=0), axis=1)

    def export(self):
        inputs = keras.Input(self.model.inputs[0].shape[1:])
        return keras.Model(inputs, Reject()(self.model(inputs)))
