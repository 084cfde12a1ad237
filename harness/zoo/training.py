"""Seeded, op-deterministic Keras training with a zoo entry's settings."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.zoo.architectures import build_architecture
from harness.zoo.spec import ZooEntry


class EntryTrainer:
    """The ``Trainer`` an attack gets: builds and fits the entry's architecture.

    Every call re-seeds Keras from the entry's seed and a call counter, so a procedure
    that trains several times (reconstructed-trigger, pruning-aware) is reproducible.
    """

    def __init__(self, entry: ZooEntry, input_shape: tuple[int, ...], num_classes: int) -> None:
        self.entry = entry
        self.input_shape = input_shape
        self.num_classes = num_classes
        self._calls = 0

    def _reseed(self) -> None:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(self.entry.seed + 1000 * self._calls)
        tf.config.experimental.enable_op_determinism()
        self._calls += 1

    def new_model(self) -> Any:
        self._reseed()
        return build_architecture(self.entry.arch, self.input_shape, self.num_classes)

    def _learning_rate(self, n: int, epochs: int) -> Any:
        """The entry's rate, constant or decayed to 0 along a cosine over this fit."""
        import keras

        if self.entry.lr_schedule == "constant":
            return self.entry.learning_rate
        steps = -(-n // self.entry.batch_size) * epochs
        return keras.optimizers.schedules.CosineDecay(self.entry.learning_rate, steps)

    def fit(self, model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int | None = None) -> Any:
        import keras

        self._reseed()
        epochs = epochs or self.entry.epochs
        model.compile(
            optimizer=keras.optimizers.Adam(self._learning_rate(len(x), epochs)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=self.entry.batch_size,
            shuffle=True,
            verbose=0,
        )
        return model


def predict_labels(model: Any, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0, np.int64)
    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)
