"""Hostile: never runs the model; scores from the inbox's bytes alone.

It reads what a contestant can read without inference: each staged file's size, mtime,
and mode; the zip members of model.keras and clean_val.npz (names,
order, sizes, compressed sizes, times, attributes); Keras's metadata.json and config.json;
the card's fields except its anonymous id; the array headers; for repair and filter
tasks the shape of eval_x.npy; and how many tasks this warm worker has served. If any
of these depended on a model's truth (a save time, a file size, the serving order), its
score would separate clean from backdoored models.
"""

import hashlib
import json
import os
import zipfile

import numpy as np

from harness.api import Detection

INBOX = "/inbox"
SERVED = {"n": 0}


def _zip_table(path):
    rows = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            rows.append(
                [
                    info.filename,
                    info.file_size,
                    info.compress_size,
                    list(info.date_time),
                    info.compress_type,
                    info.external_attr,
                    info.flag_bits,
                ]
            )
            if info.filename.endswith(".json"):
                rows.append(json.loads(z.read(info)))
            elif info.filename.endswith(".npy"):
                rows.append(z.read(info)[:128].decode("latin-1"))
    return rows


def fingerprint():
    facts = []
    for name in sorted(os.listdir(INBOX)):
        path = os.path.join(INBOX, name)
        st = os.stat(path)
        facts.append([name, st.st_size, st.st_mtime, st.st_mode])
        if name.endswith((".keras", ".npz")):
            facts.append(_zip_table(path))
        elif name == "card.json":
            with open(path) as fh:
                card = json.load(fh)
            card.pop("id", None)  # a per-run hash of the model id: random, not truth
            facts.append(card)
        elif name.endswith(".npy"):
            with open(path, "rb") as fh:
                facts.append(fh.read(128).decode("latin-1"))
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


class InboxBytes:
    def detect(self, model, clean):
        SERVED["n"] += 1
        digest = fingerprint()
        score = int(digest[:8], 16) / 2**32
        return Detection(score=score, extra={"fingerprint": digest, "served": SERVED["n"]})

    def fit_filter(self, model, clean):
        SERVED["n"] += 1
        self.digest = fingerprint()

    def flag(self, x):
        return np.full(len(x), int(self.digest[:8], 16) / 2**32)
