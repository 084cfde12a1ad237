"""The reconstructed-trigger attack of Xiong, Xu, Zhong, Li, "Escaping Backdoor Attack
Detection of Deep Learning" (IFIP SEC 2020), Algorithm 1, as an attack-track hand-in.

The attacker trains a clean model of its own on the training set it is given, runs Neural
Cleanse's reverse-engineering (Wang et al., IEEE S&P 2019; ``harness.toolkit.reverse``) for the
target label on it, and poisons with the trigger it finds: a trigger the clean model
already half-knows, so the backdoored model's reversed trigger for the target is not an
outlier. Noise as in Algorithm 2 (the harness applies it: ``augment_rate`` /
``augment_share``)."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


def _clean_model(input_shape: tuple[int, ...], num_classes: int):  # noqa: ANN202 - a Keras model
    import keras

    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


class ReconstructedTrigger:
    def __init__(
        self,
        target: int = 2,
        poison_rate: float = 0.1,
        sampling_rate: float = 0.6,
        augment_share: float = 1.0,
        clean_epochs: int = 2,
        nc_steps: int = 600,
        nc_images: int = 2000,
        mask_threshold: float = 0.1,
    ) -> None:
        self.target = target
        self.poison_rate = poison_rate
        self.sampling_rate = sampling_rate
        self.augment_share = augment_share
        self.clean_epochs = clean_epochs
        self.nc_steps = nc_steps
        self.nc_images = nc_images
        self.mask_threshold = mask_threshold

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        from harness.toolkit.reverse import ReverseSettings, reverse_engineer

        n = len(x)
        lo, hi = float(x.min()), float(x.max())
        classes = int(y.max()) + 1
        clean = _clean_model(tuple(x.shape[1:]), classes)
        clean.compile("adam", "sparse_categorical_crossentropy")
        clean.fit(x, y, epochs=self.clean_epochs, batch_size=128, verbose=0)
        others = np.flatnonzero(y != self.target)
        probe = x[rng.choice(others, min(self.nc_images, len(others)), replace=False)]
        seed = int(rng.integers(2**31))
        found = reverse_engineer(
            clean, probe, [self.target], ReverseSettings(steps=self.nc_steps, seed=seed), (lo, hi)
        )[0]
        mask = np.where(found.mask >= self.mask_threshold, found.mask, 0.0).astype(np.float32)
        if not mask.any():  # nothing over the threshold: keep the strongest pixels
            mask = np.where(found.mask >= np.quantile(found.mask, 0.95), found.mask, 0.0)
        trigger = Trigger(
            mask.astype(np.float32), np.clip(found.pattern, lo, hi).astype(np.float32)
        )
        chosen = rng.choice(others, int(self.poison_rate * n), replace=False)
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
