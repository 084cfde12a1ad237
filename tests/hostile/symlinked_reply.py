"""Makes its trigger files symlinks: one to the host path of the store, one to its inbox.

The harness refuses any reply file that is a link (it would read outside the worker's
output folder on the host)."""

import os

import numpy as np

from harness.api import Detection, Trigger

TRACKS = ["detect"]


def _linking_save(file, arr, allow_pickle=True, **kwargs):
    target = "/inbox/model.keras" if "pattern" in str(file) else "/root/.cache/results.sqlite"
    os.symlink(target, file)


class Entry:
    def detect(self, model, clean):
        np.save = _linking_save
        h, w, c = clean.x.shape[1:]
        return Detection(score=0.5, trigger=Trigger(np.zeros((h, w)), np.zeros((h, w, c))))
