import numpy as np


class OffByOne:
    """Answers N+1 for 'rejected', as some CSAW submissions did."""

    def repair(self, model, clean):
        self.n = clean.num_classes

    def predict(self, x):
        return np.full(len(x), self.n + 1)
