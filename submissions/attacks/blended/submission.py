"""The blended attack as an attack-track hand-in (Chen, Liu, Li, Lu, Song, "Targeted
Backdoor Attacks on Deep Learning Systems Using Data Poisoning", 2017): a uniform random
pattern mixed into the whole image, x' = (1 - alpha) x + alpha p. No small patch for a
trigger-reconstruction defense to find, but a full-image mask of weight alpha."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


class Blended:
    def __init__(self, alpha: float = 0.15, target: int = 0, poison_rate: float = 0.1) -> None:
        self.alpha = alpha
        self.target = target
        self.poison_rate = poison_rate

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        n, h, w, c = x.shape
        lo, hi = float(x.min()), float(x.max())
        pattern = (lo + (hi - lo) * rng.random((h, w, c))).astype(np.float32)
        trigger = Trigger(np.full((h, w), self.alpha, np.float32), pattern)
        chosen = rng.choice(
            np.flatnonzero(y != self.target), int(self.poison_rate * n), replace=False
        )
        x[chosen] = trigger.stamp(x[chosen])
        y[chosen] = self.target
        return PoisonedSet(x, y, [trigger], [self.target])
