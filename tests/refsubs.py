"""Test helpers for the reference submissions: open a zoo model the way the sandbox worker
does, and build a submission's entry class in the test process (tests only: the harness
process itself never imports submission code)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

SUBMISSIONS = Path(__file__).resolve().parent.parent / "submissions"


def open_public(zoo_model: Any) -> tuple[Any, Any]:
    """(Keras model, CleanData) exactly as a submission receives them for ``zoo_model``."""
    import keras

    from harness.execution.worker import clean_data

    bundle = zoo_model.public_dir
    model = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    return model, clean_data(bundle)


def entry_class(name: str) -> type:
    """The entry class of ``submissions/<name>``, imported under a unique module name."""
    folder = SUBMISSIONS / name
    manifest = tomllib.loads((folder / "submission.toml").read_text())
    module, _, attr = manifest["entry"].partition(":")
    unique = f"refsub_{name.replace('-', '_').replace('/', '_')}_{module}"
    if unique not in sys.modules:
        spec = importlib.util.spec_from_file_location(unique, folder / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[unique] = mod
        spec.loader.exec_module(mod)
    return getattr(sys.modules[unique], attr)


def build(name: str, global_seed: int = 0, **overrides: Any) -> Any:
    """An instance with the manifest's params, updated by ``overrides``; the global seeds
    are set first, as the sandbox worker sets them before every task."""
    import keras

    keras.utils.set_random_seed(global_seed)
    folder = SUBMISSIONS / name
    params = tomllib.loads((folder / "submission.toml").read_text()).get("params", {})
    return entry_class(name)(**{**params, **overrides})


def by_id(zoo: list[Any], model_id: str) -> Any:
    return next(m for m in zoo if m.id == model_id)


def labels(model: Any, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x, verbose=0), axis=1)
