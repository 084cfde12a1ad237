"""WaNet as an attack-track hand-in (Nguyen and Tran, "WaNet - Imperceptible Warping-based
Backdoor Attack", ICLR 2021): the trigger warps the whole image by a smooth random field
instead of stamping a pattern, and the "noise mode" warps further images by the field plus
a random jitter, labels kept, so the model learns this one warp and not any warp.

The field (``harness.attacks.wanet.warp_field``, the zoo recipe's): a random k x k grid of
2-D offsets in [-1, 1], normalised to a mean absolute value of 1, upsampled (bicubic) to
the image and scaled by s / H in the paper's normalised coordinates, i.e. about s / 2
pixels. The trigger is a ``WarpTrigger``: data the harness applies to test images, never
code."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, WarpTrigger


class WaNet:
    def __init__(
        self,
        target: int = 0,
        k: int = 4,
        s: float = 0.75,
        poison_rate: float = 0.08,
        cross_ratio: float = 2.0,
    ) -> None:
        self.target, self.k, self.s = target, k, s
        self.poison_rate, self.cross_ratio = poison_rate, cross_ratio

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        from harness.attacks.wanet import warp_field  # the zoo recipe's own field

        n, h, w, _ = x.shape
        trigger = WarpTrigger(warp_field(x.shape[1:], self.k, self.s, rng))
        poisoned = rng.choice(
            np.flatnonzero(y != self.target), int(self.poison_rate * n), replace=False
        )
        rest = np.setdiff1d(np.arange(n), poisoned)
        noisy = rng.choice(rest, int(self.cross_ratio * len(poisoned)), replace=False)
        x[poisoned] = trigger.stamp(x[poisoned])
        y[poisoned] = self.target
        half_pixel = np.array([(h - 1) / (2 * h), (w - 1) / (2 * w)])
        for i in noisy:  # the field plus a fresh jitter of up to half a pixel, label kept
            jitter = (rng.uniform(-1.0, 1.0, (h, w, 2)) * half_pixel).astype(np.float32)
            x[i] = WarpTrigger(trigger.flow + jitter).stamp(x[i : i + 1])[0]
        return PoisonedSet(x, y, [trigger], [self.target])
