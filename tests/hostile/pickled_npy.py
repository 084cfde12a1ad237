"""Replaces numpy.save in its own worker, so the trigger file it returns holds a pickle.

Everything in the worker process is the submission's to change, so the harness trusts no
check made there: it loads reply arrays with allow_pickle=False and refuses this one."""

import numpy as np

from harness.api import Detection, Trigger

TRACKS = ["detect"]


def _pickling_save(file, arr, allow_pickle=True, **kwargs):
    payload = np.empty(1, dtype=object)
    payload[0] = {"os.system": "echo pwned"}
    with open(file, "wb") as fh:
        np.lib.format.write_array(fh, payload, allow_pickle=True)


class Entry:
    def detect(self, model, clean):
        np.save = _pickling_save
        h, w, c = clean.x.shape[1:]
        return Detection(score=0.5, trigger=Trigger(np.zeros((h, w)), np.zeros((h, w, c))))
