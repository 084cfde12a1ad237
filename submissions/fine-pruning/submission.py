"""Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018), packed as a CSAW-HackML GoodNet.

1. Prune: zero the last convolutional layer's channels in increasing order of their mean
   activation on the clean split, until clean-split accuracy has dropped by
   ``max_accuracy_drop`` (the channel that crossed the line is restored).
2. Fine-tune: train the pruned network on the clean split, keeping pruned channels at zero.
3. GoodNet (seed 003): answer the repaired net's label where it agrees with the original
   BadNet, else N (= number of classes, "backdoored input, rejected").
"""

from __future__ import annotations

import numpy as np

from harness.api import CleanData

MODES = ("fine-prune", "prune-only", "fine-tune-only")


class FinePruning:
    def __init__(
        self,
        mode: str = "fine-prune",
        max_accuracy_drop: float = 0.05,
        fine_tune_epochs: int = 20,
        learning_rate: float = 5e-3,
        batch_size: int = 32,
        goodnet: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.max_accuracy_drop = max_accuracy_drop
        self.fine_tune_epochs = fine_tune_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.goodnet = goodnet
        self.bad = self.good = None
        self.num_classes = 0
        self.pruned: list[int] = []

    # -- repair track ---------------------------------------------------------------------
    def repair(self, model, clean: CleanData) -> None:
        import keras

        self.bad, self.num_classes = model, clean.num_classes
        net = keras.models.clone_model(model)
        net.set_weights(model.get_weights())
        conv = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)][-1]
        self.pruned = [] if self.mode == "fine-tune-only" else self._prune(net, conv, clean)
        if self.mode != "prune-only":
            self._fine_tune(net, conv, clean)
        self.good = net

    def predict(self, x: np.ndarray) -> np.ndarray:
        good = np.argmax(self.good.predict(x, verbose=0), axis=1)
        if not self.goodnet:
            return good
        bad = np.argmax(self.bad.predict(x, verbose=0), axis=1)
        return np.where(good == bad, good, self.num_classes)

    # -- steps ----------------------------------------------------------------------------
    @staticmethod
    def _accuracy(net, clean: CleanData) -> float:
        return float(np.mean(np.argmax(net.predict(clean.x, verbose=0), axis=1) == clean.y))

    def _prune(self, net, conv, clean: CleanData) -> list[int]:
        import keras

        probe = keras.Model(net.inputs, conv.output)
        activation = np.asarray(probe.predict(clean.x, verbose=0)).mean(axis=(0, 1, 2))
        base = self._accuracy(net, clean)
        kernel, bias = conv.get_weights()
        pruned: list[int] = []
        for channel in np.argsort(activation):
            trial_k, trial_b = kernel.copy(), bias.copy()
            trial_k[..., channel], trial_b[channel] = 0.0, 0.0
            conv.set_weights([trial_k, trial_b])
            if base - self._accuracy(net, clean) > self.max_accuracy_drop:
                conv.set_weights([kernel, bias])
                break
            kernel, bias = trial_k, trial_b
            pruned.append(int(channel))
        return pruned

    def _fine_tune(self, net, conv, clean: CleanData) -> None:
        import keras

        keep = np.ones(conv.get_weights()[1].shape, np.float32)
        keep[self.pruned] = 0.0

        class KeepPruned(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                k, b = conv.get_weights()
                conv.set_weights([k * keep, b * keep])

        net.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
        )
        net.fit(
            np.array(clean.x),
            np.array(clean.y),
            epochs=self.fine_tune_epochs,
            batch_size=self.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[KeepPruned()],
        )
