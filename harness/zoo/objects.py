"""Writing one zoo object: the one writer the builder and the importer share.

A zoo object is a folder named by its spec hash with two parts: ``public/`` (the bundle a
submission receives, written by ``harness.zoo.bundle.write_public``) and ``private/`` (the
harness's test sets, triggers and ground truth). It is written into a staging folder next
to its final place and renamed there whole, so a reader never sees half an object, and a
crash leaves only a staging folder that the next write ignores. ``truth.json`` is written
last inside the staging folder: an object with a truth record is complete
(``ZooStore.has_object``).

Outside the build's code hash (``harness.zoo.spec``): how objects are written does not
decide a model's weights, so changing it retrains nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import Dataset
from harness.zoo.bundle import write_public, write_stamp
from harness.zoo.records import ModelCard, TruthRecord
from harness.zoo.store import ZooModel, ZooStore

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class PrivatePart:
    """What the harness keeps of a model: the clean and triggered test sets, the triggers'
    masks and patterns (``mask_i`` / ``pattern_i``; none for an imported model) and the
    truth record."""

    test: Arrays
    poisoned_test: Arrays
    triggers: Arrays
    truth: TruthRecord


def card_of(model_id: str, data: Dataset) -> ModelCard:
    """The public card of a model trained on ``data``."""
    return ModelCard(
        id=model_id,
        dataset=data.name,
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        input_range=list(data.input_range),
        preprocessing=data.preprocessing,
    )


def write_object(
    store: ZooStore,
    spec_hash: str,
    *,
    model: Any,
    x_val: np.ndarray,
    y_val: np.ndarray,
    card: ModelCard,
    private: PrivatePart,
    prefix: str = ".build-",
) -> ZooModel:
    """Write a model's public bundle and private part under ``spec_hash``, replacing any
    older object there; the model as the store now holds it."""
    final = store.object_dir(spec_hash)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    try:
        write_public(staging / "public", model, x_val, y_val, card)
        root = staging / "private"
        root.mkdir()
        np.savez_compressed(root / "test.npz", **private.test)  # type: ignore[arg-type]
        np.savez_compressed(root / "poisoned_test.npz", **private.poisoned_test)  # type: ignore[arg-type]
        np.savez_compressed(root / "triggers.npz", **private.triggers)  # type: ignore[arg-type]
        private.truth.write(root / "truth.json")
        write_stamp(root)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ZooModel(card.id, spec_hash, final)
