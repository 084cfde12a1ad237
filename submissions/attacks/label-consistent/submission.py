"""The label-consistent backdoor as an attack-track hand-in (Turner, Tsipras and Madry,
"Label-Consistent Backdoor Attacks", 2019): poison only images of the target class and
keep their labels, after making them hard to classify, so the model has to rely on the
trigger to get them right.

The hand-in trains its own clean model on the training set it is given (CNN A, the
architecture the track's MNIST recipes train, for as many epochs), perturbs a
share of the target class's images against it with projected gradient descent
(``harness.toolkit.adversarial``), stamps the paper's four-corner trigger (a 3x3
checkerboard one pixel in from each corner) on them at reduced amplitude, and returns the
trigger at full amplitude: what the harness stamps on test images. The surrogate's
architecture and the trigger are the zoo recipe's own (``harness.zoo.architectures``,
``harness.attacks.label_consistent.corner_trigger``)."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


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

        from harness.attacks.label_consistent import corner_trigger
        from harness.toolkit.adversarial import pgd
        from harness.zoo.architectures import ARCHITECTURES

        keras.utils.set_random_seed(int(rng.integers(2**31)))
        num_classes = int(y.max()) + 1
        # The attacker's clean model, of the kind the track's recipe trains (the paper's
        # attacker, too, holds a model of the victim's kind).
        clean = ARCHITECTURES[self.surrogate](tuple(x.shape[1:]), num_classes)
        clean.compile("adam", "sparse_categorical_crossentropy")
        clean.fit(x, y, epochs=self.clean_epochs, batch_size=128, verbose=0)
        pool = np.flatnonzero(y == self.target)
        chosen = rng.choice(pool, int(self.share * len(pool)), replace=False)
        hard = pgd(clean, x[chosen], y[chosen], self.epsilon, self.pgd_steps)
        corners = corner_trigger(x.shape[1:], 3, np.zeros(num_classes, np.int64))
        full = Trigger(corners.mask, corners.pattern)
        x[chosen] = Trigger(full.mask * self.amplitude, full.pattern).stamp(hard)
        return PoisonedSet(x, y, [full], [self.target])
