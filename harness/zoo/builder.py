"""Deterministic zoo builder: train each entry, measure CA/ASR, write public + private parts.

Each entry is cached by its spec hash (which includes the builder version), so building a
profile again only trains what changed. A backdoored entry whose ASR stays below its floor
fails the build instead of polluting the zoo.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.attacks import AttackContext, Backdoor, make_backdoor
from harness.data import Dataset, load_dataset
from harness.errors import ZooError
from harness.zoo.bundle import is_current, migrate, write_public, write_stamp
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


def _write_private(
    root: Path,
    entry: ZooEntry,
    backdoor: Backdoor | None,
    splits: Splits,
    poisoned: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ca: float,
    asr: float | None,
    seconds: float,
) -> None:
    root.mkdir(parents=True)
    np.savez_compressed(root / "test.npz", x=splits.x_test, y=splits.y_test)
    xp, ysrc, ytgt, src_index = poisoned
    np.savez_compressed(
        root / "poisoned_test.npz", x=xp, y_src=ysrc, y_tgt=ytgt, src_index=src_index
    )
    triggers = backdoor.triggers if backdoor else ()
    arrays: dict[str, np.ndarray] = {f"mask_{i}": t.mask for i, t in enumerate(triggers)}
    arrays.update({f"pattern_{i}": t.pattern for i, t in enumerate(triggers)})
    np.savez_compressed(root / "triggers.npz", **arrays)  # type: ignore[arg-type]
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
        write_public(
            staging / "public",
            model,
            splits.x_val,
            splits.y_val,
            ModelCard(
                id=entry.id,
                dataset=data.name,
                input_shape=list(data.input_shape),
                num_classes=data.num_classes,
                input_range=list(data.input_range),
                preprocessing=data.preprocessing,
            ),
        )
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
        write_stamp(staging / "private")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ZooModel(entry.id, entry.spec_hash(), final)


#: Called once per entry with what happened to it: "built", "cached" or "migrated" (a
#: cached model whose public bundle was rewritten in the current format, see bundle.py).
ProgressFn = Callable[[ZooEntry, str], None]


def build_profile(
    profile: ZooProfile,
    store: ZooStore | None = None,
    *,
    force: bool = False,
    mnist_source: Path | None = None,
    on_done: ProgressFn | None = None,
) -> list[ZooModel]:
    """Build every entry not already cached, migrate cached bundles written in an older
    format; write the profile's index last."""
    store = store or ZooStore()
    built = build_entries(
        profile.entries, store, force=force, mnist_source=mnist_source, on_done=on_done
    )
    store.write_index(profile.name, [(m.id, m.hash) for m in built])
    return built


def build_entries(
    entries: Sequence[ZooEntry],
    store: ZooStore,
    *,
    force: bool = False,
    mnist_source: Path | None = None,
    on_done: ProgressFn | None = None,
) -> list[ZooModel]:
    """Build (or reuse) each entry; the models in the order of ``entries``.

    Processes that build into one store share the work: each entry is built under its
    object lock (ZooStore.object_lock), an entry another process is building is passed
    over and picked up again once that process is done (by then it is cached), so two
    builds of one list started together each train about half of it."""
    datasets: dict[str, Dataset] = {}
    done: dict[int, ZooModel] = {}
    pending = list(enumerate(entries))
    while pending:
        busy = []
        for i, entry in pending:
            with store.object_lock(entry.spec_hash(), wait=False) as held:
                if not held:
                    busy.append((i, entry))
                    continue
                done[i], status = _build_or_reuse(entry, store, datasets, force, mnist_source)
            if on_done:
                on_done(entry, status)
        if busy and len(busy) == len(pending):
            # Every entry left is being built elsewhere: wait for the first to be done.
            with store.object_lock(busy[0][1].spec_hash(), wait=True):
                pass
        pending = busy
    return [done[i] for i in range(len(entries))]


def _build_or_reuse(
    entry: ZooEntry,
    store: ZooStore,
    datasets: dict[str, Dataset],
    force: bool,
    mnist_source: Path | None,
) -> tuple[ZooModel, str]:
    """One entry, under its object lock: (the model, "built" / "cached" / "migrated")."""
    root = store.object_dir(entry.spec_hash())
    if store.has_object(entry.spec_hash()) and not force:
        if is_current(root):
            return ZooModel(entry.id, entry.spec_hash(), root), "cached"
        migrate(root)
        return ZooModel(entry.id, entry.spec_hash(), root), "migrated"
    if entry.dataset not in datasets:
        source = mnist_source if entry.dataset == "mnist" else None
        datasets[entry.dataset] = load_dataset(entry.dataset, source)
    return build_entry(entry, datasets[entry.dataset], store), "built"
