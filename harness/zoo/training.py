"""Everything that decides a zoo model's weights: the entry's data splits, seeded and
op-deterministic Keras training with its settings, the attack's implant, and the CA/ASR it
reaches.

This module is the core of the build's code hash (``harness.zoo.spec.build_code_hash``):
editing it retrains every zoo. Writing the trained model to the store is
``harness.zoo.objects``'s, outside the hash, so changing how objects are written moves no
model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.attacks import AttackContext, Backdoor, make_backdoor
from harness.data import Dataset
from harness.errors import ZooError
from harness.zoo.architectures import build_architecture
from harness.zoo.spec import ZooEntry

#: Test images are drawn once per data set with this seed, so every model is scored alike.
TEST_SPLIT_SEED = 20260101


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def make_splits(data: Dataset, entry: ZooEntry) -> Splits:
    """Hold out ``val_per_class`` clean images per class; sample the train and test sets."""
    rng = np.random.default_rng(entry.seed)
    val_idx = np.concatenate(
        [
            rng.choice(np.flatnonzero(data.y_train == c), entry.val_per_class, replace=False)
            for c in range(data.num_classes)
        ]
    )
    pool = np.setdiff1d(np.arange(len(data.y_train)), val_idx)
    if entry.train_size:
        pool = rng.choice(pool, min(entry.train_size, len(pool)), replace=False)
    test_idx = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(data.y_test))
    test_idx = np.sort(test_idx[: entry.test_size])
    return Splits(
        data.x_train[pool],
        data.y_train[pool],
        data.x_train[val_idx],
        data.y_train[val_idx],
        data.x_test[test_idx],
        data.y_test[test_idx],
    )


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


#: Triggered test images: (stamped x, source labels, target labels, source test index).
PoisonedTest = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Trained:
    """One entry trained: the model, its backdoor (None when clean) and what it scored."""

    model: Any
    backdoor: Backdoor | None
    splits: Splits
    poisoned: PoisonedTest
    ca: float
    asr: float | None
    asr_floor: float | None


def asr_floor(entry: ZooEntry, backdoor: Backdoor | None) -> float | None:
    """The ASR a backdoored entry must reach: the entry's own floor, else its recipe's."""
    if backdoor is None or not backdoor.poisoned:
        return None
    return entry.asr_floor if entry.asr_floor is not None else backdoor.asr_floor


def train_entry(entry: ZooEntry, data: Dataset) -> Trained:
    """Train one entry (implanting its attack, if any) and measure CA and ASR on its test
    split. A backdoor whose ASR stays below its floor fails the build."""
    splits = make_splits(data, entry)
    trainer = EntryTrainer(entry, data.input_shape, data.num_classes)
    backdoor = None
    if entry.attack == "none":
        model = trainer.fit(trainer.new_model(), splits.x_train, splits.y_train)
    else:
        ctx = AttackContext(
            data.input_shape,
            data.num_classes,
            entry.seed,
            splits.x_train,
            splits.y_train,
            trainer,
        )
        backdoor = make_backdoor(entry.attack, entry.attack_params, ctx)
        model = backdoor.implant(ctx)
    poisoned = (
        backdoor.poisoned_test(splits.x_test, splits.y_test)
        if backdoor is not None
        else (
            np.zeros((0, *data.input_shape), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
        )
    )
    ca = float(np.mean(predict_labels(model, splits.x_test) == splits.y_test))
    asr = None
    floor = asr_floor(entry, backdoor)
    if backdoor is not None and backdoor.poisoned:
        asr = float(np.mean(predict_labels(model, poisoned[0]) == poisoned[2]))
        if floor is not None and asr < floor:
            raise ZooError(
                f"backdoor of {entry.id} did not take: ASR {asr:.3f} < floor {floor:.2f}",
                fix="raise epochs, train_size or the poisoned share in the zoo spec",
            )
    return Trained(model, backdoor, splits, poisoned, ca, asr, floor)
