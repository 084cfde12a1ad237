"""Deterministic zoo builder: train each entry, measure CA/ASR, write public + private parts.

Each entry is cached by its spec hash (which includes the builder version), so building a
profile again only trains what changed. A backdoored entry whose ASR stays below its floor
fails the build instead of polluting the zoo.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.attacks import Backdoor, make_backdoor
from harness.data import Dataset, load_dataset
from harness.errors import ZooError
from harness.zoo.architectures import build_architecture
from harness.zoo.records import ModelCard, TruthRecord
from harness.zoo.spec import ZooEntry, ZooProfile
from harness.zoo.store import ZooModel, ZooStore

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
    val_idx = np.sort(val_idx)
    return Splits(
        data.x_train[pool],
        data.y_train[pool],
        data.x_train[val_idx],
        data.y_train[val_idx],
        data.x_test[test_idx],
        data.y_test[test_idx],
    )


def train_classifier(entry: ZooEntry, x: np.ndarray, y: np.ndarray, num_classes: int) -> Any:
    """Seeded, op-deterministic Keras training of the entry's architecture."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(entry.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_architecture(entry.arch, tuple(x.shape[1:]), num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(entry.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=entry.epochs, batch_size=entry.batch_size, shuffle=True, verbose=0)
    return model


def predict_labels(model: Any, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0, np.int64)
    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)


def save_stripped(model: Any, path: Path) -> None:
    """Save weights and architecture only: no optimizer state, no training config."""
    bare = type(model).from_config(model.get_config())  # a fresh, never-compiled copy
    bare.set_weights(model.get_weights())
    bare.save(path)


def _write_private(
    root: Path,
    entry: ZooEntry,
    backdoor: Backdoor | None,
    splits: Splits,
    poisoned: tuple[np.ndarray, np.ndarray, np.ndarray],
    ca: float,
    asr: float | None,
    seconds: float,
) -> None:
    root.mkdir(parents=True)
    np.savez_compressed(root / "test.npz", x=splits.x_test, y=splits.y_test)
    xp, ysrc, ytgt = poisoned
    np.savez_compressed(root / "poisoned_test.npz", x=xp, y_src=ysrc, y_tgt=ytgt)
    triggers = backdoor.triggers if backdoor else ()
    np.savez_compressed(
        root / "triggers.npz",
        **{
            **{f"mask_{i}": t.mask for i, t in enumerate(triggers)},
            **{f"pattern_{i}": t.pattern for i, t in enumerate(triggers)},
        },
    )
    TruthRecord(
        id=entry.id,
        spec_hash=entry.spec_hash(),
        poisoned=entry.poisoned,
        attack=entry.attack,
        params=dict(entry.attack_params),
        targets=backdoor.targets if backdoor else [],
        all_to_all=backdoor.all_to_all if backdoor else False,
        target_maps=[t.target_of.tolist() for t in triggers],
        trigger_sizes=[t.size for t in triggers],
        ca=ca,
        asr=asr,
        asr_floor=_floor(entry, backdoor),
        arch=entry.arch,
        seed=entry.seed,
        build_seconds=round(seconds, 2),
        harness_version=__version__,
    ).write(root / "truth.json")


def _floor(entry: ZooEntry, backdoor: Backdoor | None) -> float | None:
    if backdoor is None:
        return None
    return entry.asr_floor if entry.asr_floor is not None else backdoor.asr_floor


def build_entry(entry: ZooEntry, data: Dataset, store: ZooStore) -> ZooModel:
    """Train one entry and write it to the store under its spec hash."""
    start = time.perf_counter()
    splits = make_splits(data, entry)
    backdoor = None
    x_train, y_train = splits.x_train, splits.y_train
    empty = (
        np.zeros((0, *data.input_shape), np.float32),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
    )
    poisoned = empty
    if entry.poisoned:
        backdoor = make_backdoor(
            entry.attack, entry.attack_params, data.input_shape, data.num_classes, entry.seed
        )
        x_train, y_train = backdoor.poison_training(
            x_train, y_train, np.random.default_rng(entry.seed + 1)
        )
        poisoned = backdoor.poisoned_test(splits.x_test, splits.y_test)
    model = train_classifier(entry, x_train, y_train, data.num_classes)
    ca = float(np.mean(predict_labels(model, splits.x_test) == splits.y_test))
    asr = None
    if backdoor is not None:
        asr = float(np.mean(predict_labels(model, poisoned[0]) == poisoned[2]))
        floor = _floor(entry, backdoor)
        if floor is not None and asr < floor:
            raise ZooError(
                f"backdoor of {entry.id} did not take: ASR {asr:.3f} < floor {floor:.2f}",
                fix="raise epochs, train_size or poison_rate in the zoo spec",
            )
    final = store.object_dir(entry.spec_hash())
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        (staging / "public").mkdir()
        save_stripped(model, staging / "public" / "model.keras")
        np.savez_compressed(staging / "public" / "clean_val.npz", x=splits.x_val, y=splits.y_val)
        ModelCard(
            id=entry.id,
            dataset=data.name,
            input_shape=list(data.input_shape),
            num_classes=data.num_classes,
            input_range=list(data.input_range),
            preprocessing=data.preprocessing,
            clean_split_size=int(len(splits.y_val)),
        ).write(staging / "public" / "card.json")
        _write_private(
            staging / "private",
            entry,
            backdoor,
            splits,
            poisoned,
            ca,
            asr,
            time.perf_counter() - start,
        )
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ZooModel(entry.id, entry.spec_hash(), final)


ProgressFn = Callable[[ZooEntry, bool], None]


def build_profile(
    profile: ZooProfile,
    store: ZooStore | None = None,
    *,
    force: bool = False,
    mnist_source: Path | None = None,
    on_done: ProgressFn | None = None,
) -> list[ZooModel]:
    """Build every entry not already cached; write the profile's index last."""
    store = store or ZooStore()
    datasets: dict[str, Dataset] = {}
    built = []
    for entry in profile.entries:
        cached = store.has_object(entry.spec_hash()) and not force
        if cached:
            built.append(ZooModel(entry.id, entry.spec_hash(), store.object_dir(entry.spec_hash())))
        else:
            if entry.dataset not in datasets:
                datasets[entry.dataset] = load_dataset(entry.dataset, mnist_source)
            built.append(build_entry(entry, datasets[entry.dataset], store))
        if on_done:
            on_done(entry, cached)
    store.write_index(profile.name, [(m.id, m.hash) for m in built])
    return built
