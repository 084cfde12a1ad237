"""Known answers: the trigger in answers.npz, stamped (fuzz), matched (filter), returned (detect)."""

from pathlib import Path

import numpy as np

from harness.api import Detection, GeneratedInputs, Trigger


class KnownAnswers:
    def __init__(self):
        with np.load(Path(__file__).parent / "answers.npz") as npz:
            self.mask, self.pattern = npz["mask"], npz["pattern"]

    def detect(self, model, clean):
        return Detection(score=0.9, target_labels=[0], trigger=Trigger(self.mask, self.pattern))

    def fit_filter(self, model, clean):
        pass

    def flag(self, x):
        m = self.mask[None, :, :, None]
        diff = np.abs(x * m - self.pattern[None] * m).sum(axis=(1, 2, 3)) / max(m.sum(), 1.0)
        return 1.0 - np.clip(diff, 0.0, 1.0)

    def generate(self, model, clean, budget):
        idx = np.arange(min(budget, len(clean.x)))
        m = self.mask[None, :, :, None]
        x = (1.0 - m) * clean.x[idx] + m * self.pattern[None]
        return GeneratedInputs(x=x.astype(np.float32), seed_index=idx)
