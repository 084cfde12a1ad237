"""Replaces its task's output folder (/scratch/out) by a symbolic link to a host path
(``PARAMS["target"]``, under /tmp), after making the same path in its own /tmp so that its
saves succeed inside the sandbox. On the host the link points at the host's folder of that
name (another task's scratch, a file the harness wrote): the harness would score the
files it finds there. Done in flag() (the filter track's scores.npy) and in predict() (the
repair track's predictions, and the GoodNet export's model file).

The harness opens every name below the scratch folder with O_NOFOLLOW: the task fails
with "out is a symbolic link: links are refused"."""

import os
import shutil

import numpy as np

TRACKS = ["filter", "repair"]
PARAMS = {"target": "/tmp/nonexistent"}


def _link_out(target):
    if os.path.islink("/scratch/out"):
        return
    shutil.rmtree("/scratch/out", ignore_errors=True)
    os.makedirs(target, exist_ok=True)
    os.symlink(target, "/scratch/out")


class Entry:
    def __init__(self, target="/tmp/nonexistent"):
        self.target = target

    def fit_filter(self, model, clean):
        pass

    def flag(self, x):
        _link_out(self.target)
        return np.zeros(len(x))

    def repair(self, model, clean):
        self.model = model

    def predict(self, x):
        _link_out(self.target)
        return np.argmax(self.model.predict(x, verbose=0), axis=1)

    def export(self):
        return self.model
