"""BadNets as an attack-track hand-in (Gu, Dolan-Gavitt, Garg, "BadNets: Identifying
Vulnerabilities in the Machine Learning Model Supply Chain", 2017): a small checkerboard
patch in a corner; ``poison_rate`` of the images of the other classes stamped and
relabelled to ``target``. The trigger Neural Cleanse was designed to find: a baseline that
should score an evasion near 0."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


class BadNetsPatch:
    def __init__(
        self, size: int = 3, corner: str = "bottom-right", target: int = 0, poison_rate: float = 0.1
    ) -> None:
        self.size = size
        self.corner = corner
        self.target = target
        self.poison_rate = poison_rate

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        n, h, w, c = x.shape
        lo, hi = float(x.min()), float(x.max())
        s = self.size
        top = h - 1 - s if self.corner.startswith("bottom") else 1
        left = w - 1 - s if self.corner.endswith("right") else 1
        mask = np.zeros((h, w), np.float32)
        mask[top : top + s, left : left + s] = 1.0
        checker = (np.indices((h, w)).sum(axis=0) % 2).astype(np.float32)
        pattern = np.repeat((lo + (hi - lo) * checker)[..., None], c, axis=-1)
        trigger = Trigger(mask, pattern)
        chosen = rng.choice(
            np.flatnonzero(y != self.target), int(self.poison_rate * n), replace=False
        )
        x[chosen] = trigger.stamp(x[chosen])
        y[chosen] = self.target
        return PoisonedSet(x, y, [trigger], [self.target])
