"""Exports a file that is no model: an HDF5 signature followed by garbage, under the name
the harness gave (.keras). Its export() returns an object whose save() writes it."""

import numpy as np

TRACKS = ["repair"]


class Garbage:
    def save(self, path):
        with open(path, "wb") as fh:
            fh.write(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64)


class Entry:
    def repair(self, model, clean):
        self.model = model

    def predict(self, x):
        return np.argmax(self.model.predict(x, verbose=0), axis=1)

    def export(self):
        return Garbage()
