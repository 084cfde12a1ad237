"""Deterministic zoo builder: train each entry, measure CA/ASR, write public + private parts.

Each entry is cached by its spec hash (which covers the entry and the code that decides its
weights, ``harness.zoo.training`` and the recipe), so building a profile again only trains
what changed. A backdoored entry whose ASR stays below its floor fails instead of polluting
the zoo; the build goes on with the other entries and ends with one error naming each entry
that failed (``BuildFailed``), so one bad seed costs only its own model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.attacks.kinds import to_arrays
from harness.data import Dataset, load_dataset
from harness.errors import ZooError
from harness.executors.tf_runtime import import_tensorflow
from harness.zoo.bundle import is_current, migrate
from harness.zoo.objects import PrivatePart, card_of, write_object
from harness.zoo.records import TruthRecord
from harness.zoo.spec import ZooEntry, ZooProfile
from harness.zoo.store import ZooModel, ZooStore
from harness.zoo.training import Trained, train_entry


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=lambda o: np.asarray(o).tolist()))


def _private(entry: ZooEntry, trained: Trained, seconds: float) -> PrivatePart:
    backdoor = trained.backdoor
    xp, ysrc, ytgt, src_index = trained.poisoned
    triggers = backdoor.triggers if backdoor else ()
    arrays = to_arrays(triggers)
    return PrivatePart(
        test={"x": trained.splits.x_test, "y": trained.splits.y_test},
        poisoned_test={"x": xp, "y_src": ysrc, "y_tgt": ytgt, "src_index": src_index},
        triggers=arrays,
        truth=TruthRecord(
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
            ca=trained.ca,
            asr=trained.asr,
            asr_floor=trained.asr_floor,
            arch=entry.arch,
            seed=entry.seed,
            build_seconds=round(seconds, 2),
            harness_version=__version__,
        ),
    )


def build_entry(entry: ZooEntry, data: Dataset, store: ZooStore) -> ZooModel:
    """Train one entry and write it to the store under its spec hash."""
    import_tensorflow()  # without the packages Keras would load and training never uses
    start = time.perf_counter()
    trained = train_entry(entry, data)
    return write_object(
        store,
        entry.spec_hash(),
        model=trained.model,
        x_val=trained.splits.x_val,
        y_val=trained.splits.y_val,
        card=card_of(entry.id, data),
        private=_private(entry, trained, time.perf_counter() - start),
    )


#: Called once per entry with what happened to it: "built", "cached", "migrated" (a
#: cached model whose public bundle was rewritten in the current format, see bundle.py) or
#: "failed" (a user-fixable problem, e.g. a backdoor under its ASR floor).
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
    builds of one list started together each train about half of it.

    An entry that fails on its own (``ZooError``: a backdoor under its ASR floor) does not
    stop the others: each is built, then ``BuildFailed`` names every entry that failed. A
    data set that cannot be read (``DataError``) stops the build at once."""
    datasets: dict[str, Dataset] = {}
    done: dict[int, ZooModel] = {}
    failed: dict[str, str] = {}
    pending = list(enumerate(entries))
    while pending:
        busy = []
        for i, entry in pending:
            with store.object_lock(entry.spec_hash(), wait=False) as held:
                if not held:
                    busy.append((i, entry))
                    continue
                try:
                    done[i], status = _build_or_reuse(entry, store, datasets, force, mnist_source)
                except ZooError as exc:  # this entry's own failure (a data set's stops all)
                    failed[entry.id], status = exc.problem, "failed"
            if on_done:
                on_done(entry, status)
        if busy and len(busy) == len(pending):
            # Every entry left is being built elsewhere: wait for the first to be done.
            with store.object_lock(busy[0][1].spec_hash(), wait=True):
                pass
        pending = busy
    if failed:
        raise BuildFailed(failed, len(entries))
    return [done[i] for i in range(len(entries))]


class BuildFailed(ZooError):
    """Some entries of a build failed; every other one was built (and is cached)."""

    def __init__(self, failed: dict[str, str], total: int) -> None:
        self.failed = dict(failed)
        self.total = total
        by_problem: dict[str, list[str]] = {}
        for model_id, problem in failed.items():
            by_problem.setdefault(problem, []).append(model_id)
        each = "; ".join(f"{', '.join(ids)}: {problem}" for problem, ids in by_problem.items())
        super().__init__(
            f"{len(failed)} of {total} models failed to build ({each}); the rest "
            f"({total - len(failed)}) are built and cached",
            fix="give each failed entry what it lacks in the profile (more epochs or poisoned "
            "images, its own asr_floor, or list a repeated setting's seed in failed_seeds) and "
            "build again: only those train",
        )

    def __reduce__(self) -> tuple:
        return (BuildFailed, (self.failed, self.total))


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
