"""Reports what a task tells a hand-in about which model it holds: the card's anonymous id
and the task seed (read back from NumPy's state, which the worker has just seeded with
it), and whether it can read the run's key file (``key_path``, the path on the host, which
the sandbox does not mount). With the ids keyed by a secret of the run, none of this
names the model."""

import json
from pathlib import Path

import numpy as np

from harness.api import Detection

TRACKS = ["detect"]
PARAMS = {"key_path": ""}


class Entry:
    def __init__(self, key_path: str = "") -> None:
        self.key_path = key_path

    def detect(self, model, clean):
        state = np.random.get_state()
        seed = int(state[1][0]) if state[2] == 624 else None
        card = json.loads(Path("/inbox/card.json").read_text())
        try:
            Path(self.key_path).read_bytes()
            readable = True
        except OSError:
            readable = False
        extra = {"card_id": card["id"], "seed": seed, "key_readable": readable}
        return Detection(score=0.5, extra=extra)
