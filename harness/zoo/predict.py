"""Labels from a zoo model's own file, in the harness process, for scoring.

The zoo's model files are the harness's own (trusted) artefacts; they are still loaded with
``safe_mode=True`` and no custom objects. Used where a score needs the model's answer on
inputs a submission produced (generated fuzz inputs, a reconstructed trigger stamped on
held-out images): asking the sandboxed submission for those answers would let it lie.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.executors.tf_runtime import import_tensorflow
from harness.paths import harness_home

BATCH = 512


class ModelPredictor:
    """Keeps the last loaded zoo model, so one model's tracks load it once."""

    def __init__(self) -> None:
        self._hash: str | None = None
        self._model: Any = None

    def labels(self, zoo_model: Any, x: np.ndarray) -> np.ndarray:
        """argmax of the zoo model's output on ``x`` (float32, in its input space)."""
        if self._hash != zoo_model.hash:
            keras = import_tensorflow()
            self._model = keras.saving.load_model(
                zoo_model.public_dir / "model.keras", compile=False, safe_mode=True
            )
            self._hash = zoo_model.hash
        x = np.asarray(x, np.float32)
        parts = [
            np.argmax(np.asarray(self._model(x[i : i + BATCH], training=False)), axis=1)
            for i in range(0, len(x), BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def test_labels(self, zoo_model: Any) -> tuple[np.ndarray, np.ndarray]:
        """The zoo model's labels on its whole clean and poisoned test sets: what every
        repair task of every run compares a repaired model with. Computed once per model
        and host, and kept under ``$HARNESS_HOME/cache/labels/<model hash>.npz``."""
        path = _labels_cache(zoo_model.hash)
        if path.is_file():
            with np.load(path) as npz:
                return npz["clean"], npz["poisoned"]
        sets = zoo_model.test_sets()
        clean = self.labels(zoo_model, sets.x)
        poisoned = self.labels(zoo_model, sets.x_poisoned)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, clean=clean, poisoned=poisoned)
        tmp.replace(path)  # atomic: workers sharing HARNESS_HOME may race, harmlessly
        return clean, poisoned


def _labels_cache(spec_hash: str) -> Path:
    folder = harness_home() / "cache" / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{spec_hash}.npz"
