import numpy as np

from harness.api import GeneratedInputs


class BadFuzz:
    def __init__(self, mode="over_budget"):
        self.mode = mode

    def generate(self, model, clean, budget):
        n = budget + 1 if self.mode == "over_budget" else 4
        x = np.repeat(np.asarray(clean.x[:1]), n, axis=0)
        idx = np.zeros(n, np.int64)
        if self.mode == "out_of_range":
            x = x + 5.0
        if self.mode == "bad_seed_index":
            idx = idx + len(clean.x)
        return GeneratedInputs(x=x, seed_index=idx)
