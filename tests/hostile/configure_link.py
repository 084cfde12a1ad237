"""A learned detector whose configure step replaces its output folder by a symbolic link to
a host folder (``PARAMS["target"]``: in the attack, the zoo's object store, every model's
truth.json beside it), hoping the harness copies that folder to /configured for its tasks.

The harness copies regular files and folders only, through harness.sandbox.readback: the
step fails with "configure output: configured is a symbolic link: links are refused"."""

import os
import shutil

from harness.api import Detection, configured_dir

TRACKS = ["detect"]
PARAMS = {"target": "/nonexistent"}


class Entry:
    def __init__(self, target="/nonexistent"):
        self.target = target

    def configure(self, training_dir, out_dir):
        shutil.rmtree(out_dir)
        os.symlink(self.target, out_dir)

    def detect(self, model, clean):
        folder = configured_dir()
        found = sorted(str(p) for p in folder.rglob("truth.json")) if folder else []
        return Detection(score=0.5, extra={"truths": found[:20]})
