"""SIG as an attack-track hand-in (Barni, Kallas and Tondi, "A New Backdoor Attack in CNNs
by Training Set Corruption without Label Poisoning", ICIP 2019): a clean-label attack.

A horizontal sinusoid delta * sin(2 pi j f / W) is added to a share of the target class's
training images and no label changes; the model learns the signal as a feature of the
target class, and a stronger copy of it on any other image outweighs that image's own
features. The trigger is an ``AdditiveTrigger`` (the signal at ``delta_test``), which the
harness adds to test images; the harness's clean counterpart sees the same signal on
images of every class, labels true."""

from __future__ import annotations

import numpy as np

from harness.api import AdditiveTrigger, PoisonedSet


class Sig:
    def __init__(
        self,
        target: int = 0,
        share: float = 0.8,
        delta_train: float = 0.3,
        delta_test: float = 0.55,
        frequency: int = 6,
    ) -> None:
        self.target, self.share, self.frequency = target, share, frequency
        self.delta_train, self.delta_test = delta_train, delta_test

    def signal(self, shape: tuple[int, ...], delta: float) -> AdditiveTrigger:
        from harness.attacks.sig import signal_pattern  # the zoo recipe's own signal

        pattern = signal_pattern(shape, "sine", delta, self.frequency)
        return AdditiveTrigger(np.ones(shape[:2], np.float32), pattern)

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        pool = np.flatnonzero(y == self.target)
        chosen = rng.choice(pool, int(self.share * len(pool)), replace=False)
        x[chosen] = self.signal(x.shape[1:], self.delta_train).stamp(x[chosen])
        return PoisonedSet(x, y, [self.signal(x.shape[1:], self.delta_test)], [self.target])
