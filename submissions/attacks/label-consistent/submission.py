"""The label-consistent backdoor as an attack-track hand-in (Turner, Tsipras and Madry,
"Label-Consistent Backdoor Attacks", 2019): poison only images of the target class and
keep their labels, after making them hard to classify, so the model has to rely on the
trigger to get them right.

The hand-in trains its own clean model on the training set it is given (CNN A, the
architecture the track's MNIST recipes train, for as many epochs), perturbs a
share of the target class's images against it with projected gradient descent
(``harness.toolkit.adversarial``), stamps the paper's four-corner trigger (a 3x3
checkerboard one pixel in from each corner) on them at reduced amplitude, and returns the
trigger at full amplitude: what the harness stamps on test images."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


def _surrogate(name: str, input_shape: tuple[int, ...], num_classes: int):  # noqa: ANN202
    """The attacker's clean model: an architecture of the zoo's by name (the track's recipes
    say which they train; the paper's attacker, too, holds a model of the victim's kind)."""
    from harness.zoo.architectures import ARCHITECTURES

    return ARCHITECTURES[name](input_shape, num_classes)


def four_corners(h: int, w: int, c: int, size: int = 3) -> Trigger:
    mask = np.zeros((h, w), np.float32)
    pattern = np.zeros((h, w, c), np.float32)
    board = (np.indices((size, size)).sum(axis=0) % 2 == 0).astype(np.float32)
    for top in (1, h - 1 - size):
        for left in (1, w - 1 - size):
            mask[top : top + size, left : left + size] = 1.0
            pattern[top : top + size, left : left + size] = board[..., None]
    return Trigger(mask, pattern)


class LabelConsistent:
    def __init__(
        self,
        target: int = 0,
        share: float = 0.8,
        epsilon: float = 0.3,
        pgd_steps: int = 20,
        amplitude: float = 0.5,
        surrogate: str = "mnist_cnn_a",
        clean_epochs: int = 4,
    ) -> None:
        self.target, self.share, self.epsilon, self.pgd_steps = target, share, epsilon, pgd_steps
        self.amplitude, self.surrogate, self.clean_epochs = amplitude, surrogate, clean_epochs

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        import keras

        from harness.toolkit.adversarial import pgd

        keras.utils.set_random_seed(int(rng.integers(2**31)))
        clean = _surrogate(self.surrogate, tuple(x.shape[1:]), int(y.max()) + 1)
        clean.compile("adam", "sparse_categorical_crossentropy")
        clean.fit(x, y, epochs=self.clean_epochs, batch_size=128, verbose=0)
        pool = np.flatnonzero(y == self.target)
        chosen = rng.choice(pool, int(self.share * len(pool)), replace=False)
        hard = pgd(clean, x[chosen], y[chosen], self.epsilon, self.pgd_steps)
        full = four_corners(*x.shape[1:])
        x[chosen] = Trigger(full.mask * self.amplitude, full.pattern).stamp(hard)
        return PoisonedSet(x, y, [full], [self.target])
