"""The random-trigger attack of Xiong, Xu, Zhong, Li, "Escaping Backdoor Attack Detection
of Deep Learning" (IFIP SEC 2020), Algorithm 2, as an attack-track hand-in.

The trigger is ``mask_size`` random pixels with random values. Beside the poisoned images
(stamped, relabelled to ``target``) the paper adds "noise": clean images stamped with a
random part of the trigger (each pixel kept with probability ``sampling_rate``) that keep
their label. The model learns that only the whole trigger means ``target``, so Neural
Cleanse's smallest reversed trigger for the target is no smaller than any other label's.
The noise is the harness's to apply (``augment_rate`` / ``augment_share``): it changes most
images, which the track's limit on changed images would refuse from a hand-in."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


class RandomTrigger:
    def __init__(
        self,
        mask_size: int = 36,
        target: int = 2,
        poison_rate: float = 0.1,
        sampling_rate: float = 0.6,
        augment_share: float = 1.0,
    ) -> None:
        self.mask_size = mask_size
        self.target = target
        self.poison_rate = poison_rate
        self.sampling_rate = sampling_rate
        self.augment_share = augment_share

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        n, h, w, c = x.shape
        lo, hi = float(x.min()), float(x.max())
        mask = np.zeros(h * w, np.float32)
        mask[rng.choice(h * w, self.mask_size, replace=False)] = 1.0
        pattern = (lo + (hi - lo) * rng.integers(0, 256, (h, w, c)) / 255.0).astype(np.float32)
        trigger = Trigger(mask.reshape(h, w), pattern)
        chosen = rng.choice(
            np.flatnonzero(y != self.target), int(self.poison_rate * n), replace=False
        )
        x[chosen] = trigger.stamp(x[chosen])
        y[chosen] = self.target
        return PoisonedSet(
            x,
            y,
            [trigger],
            [self.target],
            augment_rate=self.sampling_rate,
            augment_share=self.augment_share,
        )
