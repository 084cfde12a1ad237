"""A starting point: replace the bodies, keep the signatures (see docs/SUBMITTING.md).

The harness loads each zoo model in the sandbox and calls your methods with:
- ``model``: a loaded Keras 3 model (softmax outputs);
- ``clean``: harness.api.CleanData, a small read-only clean split (x, y, num_classes, ...).
You see nothing else: no attack metadata, no poisoned data, no network, no other model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.api import CleanData, Detection


class MyDefense:
    # State the track methods build: a class attribute gives its default, because the
    # constructor only stores its parameters (`harness submission check` checks it).
    model: Any = None

    def __init__(self, noise_scale: float = 0.1) -> None:
        # Only store parameters here, unchanged; do the work in detect()/repair().
        self.noise_scale = noise_scale

    # detect track: P(backdoored) in [0, 1]; optionally target_labels and a Trigger.
    def detect(self, model, clean: CleanData) -> Detection:
        rng = np.random.default_rng(0)  # seeded: the same input must give the same answer
        noisy = np.clip(clean.x + rng.normal(0, self.noise_scale, clean.x.shape), 0, 1)
        flips = np.mean(np.argmax(model.predict(noisy, verbose=0), axis=1) != clean.y)
        return Detection(score=float(np.clip(flips, 0.0, 1.0)))

    # repair track: prepare, then label inputs; answer clean.num_classes to reject an input.
    def repair(self, model, clean: CleanData) -> None:
        self.model = model

    # x is a batch of at most 256 inputs: predict_on_batch answers it in one graph call
    # (model.predict splits it into batches of 32: about 4x slower on an MNIST CNN).
    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.model.predict_on_batch(x), axis=1)
