"""Deterministic zoo builder: train each entry, measure CA/ASR, write public + private parts.

Each entry is cached by its spec hash (which includes the builder version), so building a
profile again only trains what changed. A backdoored entry whose ASR stays below its floor
fails the build instead of polluting the zoo.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.attacks import AttackContext, Backdoor, make_backdoor
from harness.data import Dataset, load_dataset
from harness.errors import ZooError
from harness.zoo.records import ModelCard, TruthRecord
from harness.zoo.spec import ZooEntry, ZooProfile
from harness.zoo.store import ZooModel, ZooStore
from harness.zoo.training import EntryTrainer, predict_labels

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


#: Every public file carries this zip timestamp and mtime, so no build time leaks.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def save_stripped(model: Any, path: Path) -> None:
    """Save weights and architecture only: no optimizer state, no training config, and no
    build timestamps (Keras stamps the weights file's zip entry with the save time)."""
    bare = type(model).from_config(model.get_config())  # a fresh, never-compiled copy
    bare.set_weights(model.get_weights())
    bare.save(path)
    _normalise_zip(path)


def _normalise_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as dst:
        for info, body in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, body)
    tmp.replace(path)


def _fix_mtimes(folder: Path) -> None:
    stamp = time.mktime((*FIXED_TIME, 0, 0, -1))
    for f in folder.iterdir():
        os.utime(f, (stamp, stamp))


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
        poisoned=bool(backdoor and backdoor.poisoned),
        attack=entry.attack,
        params=dict(entry.attack_params),
        details=_json_safe(backdoor.params) if backdoor else {},
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


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=lambda o: np.asarray(o).tolist()))


def _floor(entry: ZooEntry, backdoor: Backdoor | None) -> float | None:
    if backdoor is None or not backdoor.poisoned:
        return None
    return entry.asr_floor if entry.asr_floor is not None else backdoor.asr_floor


def build_entry(entry: ZooEntry, data: Dataset, store: ZooStore) -> ZooModel:
    """Train one entry and write it to the store under its spec hash."""
    start = time.perf_counter()
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
        )
    )
    ca = float(np.mean(predict_labels(model, splits.x_test) == splits.y_test))
    asr = None
    if backdoor is not None and backdoor.poisoned:
        asr = float(np.mean(predict_labels(model, poisoned[0]) == poisoned[2]))
        floor = _floor(entry, backdoor)
        if floor is not None and asr < floor:
            raise ZooError(
                f"backdoor of {entry.id} did not take: ASR {asr:.3f} < floor {floor:.2f}",
                fix="raise epochs, train_size or the poisoned share in the zoo spec",
            )
    final = store.object_dir(entry.spec_hash())
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        (staging / "public").mkdir()
        save_stripped(model, staging / "public" / "model.keras")
        np.savez_compressed(staging / "public" / "clean_val.npz", x=splits.x_val, y=splits.y_val)
        _normalise_zip(staging / "public" / "clean_val.npz")
        ModelCard(
            id=entry.id,
            dataset=data.name,
            input_shape=list(data.input_shape),
            num_classes=data.num_classes,
            input_range=list(data.input_range),
            preprocessing=data.preprocessing,
            clean_split_size=int(len(splits.y_val)),
        ).write(staging / "public" / "card.json")
        _fix_mtimes(staging / "public")
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
                source = mnist_source if entry.dataset == "mnist" else None
                datasets[entry.dataset] = load_dataset(entry.dataset, source)
            built.append(build_entry(entry, datasets[entry.dataset], store))
        if on_done:
            on_done(entry, cached)
    store.write_index(profile.name, [(m.id, m.hash) for m in built])
    return built
