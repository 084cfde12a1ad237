"""Not deterministic (its score comes from os.urandom), but it keeps each model's answer in
a module-level dict: a second run in the same worker repeats the first, which is all the
same-seed check used to compare.

check_same_seed runs the task again in a fresh worker: the cache is gone, the answers
differ."""

import hashlib
import os

from harness.api import Detection

TRACKS = ["detect"]
ANSWERS: dict[str, float] = {}


class Entry:
    def detect(self, model, clean):
        key = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
        if key not in ANSWERS:
            ANSWERS[key] = int.from_bytes(os.urandom(4), "big") / 2**32
        return Detection(score=ANSWERS[key])
