"""The public bundle: the only files of a zoo model a submission ever receives.

``public/`` holds ``model.keras``, ``card.json`` and ``clean_val.npz``. Every byte of it must
be a function of the model's weights, its architecture, its clean split and the bundle
format alone: nothing about when, in which order or by which role (clean, counterpart,
backdoored) it was built. A trojan-detection contest once leaked its labels through
BatchNorm counters; a save time is the same kind of leak, because a profile builds its
clean models before its backdoored ones. So this module:

- saves weights and architecture only (no optimizer state, no training config);
- rewrites Keras's ``metadata.json`` (which stamps ``date_saved``) with fixed fields;
- gives every zip member one fixed timestamp and mode, and every file one fixed mtime;
- stores the clean split uncompressed, so its size depends on its shape alone.

The format is versioned (``BUNDLE_FORMAT``, also the card's ``format_version``); each
object records the format and the Keras version its bundle was written with in
``private/bundle.json``. A bundle written by an older format or another Keras version is
*migrated*: rewritten from its own files, with no retraining (``migrate``), so a zoo built
across an upgrade still looks alike from model to model.

It is not part of the build's code hash (``harness.zoo.spec``): a bundle change migrates
the cache instead of retraining it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.executors.tf_runtime import import_tensorflow
from harness.zoo.records import ModelCard

#: Version 2: no save time in metadata.json, clean split stored uncompressed.
BUNDLE_FORMAT = 2
PUBLIC_FILES = ("model.keras", "card.json", "clean_val.npz")
#: Every zip member and public file carries this time, so no build time leaks.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DATE_SAVED = "1980-01-01@00:00:00"
STAMP_FILE = "bundle.json"


def keras_version() -> str:
    """The installed Keras's version, read from its package metadata: a cached rebuild
    checks every bundle's stamp, and importing Keras for it would cost seconds."""
    from importlib import metadata

    try:
        return metadata.version("keras")
    except metadata.PackageNotFoundError:  # Keras importable without metadata
        import keras

        return str(keras.__version__)


def bundle_stamp() -> dict[str, Any]:
    """What a bundle written now is: its format and the Keras version that wrote it."""
    return {"format": BUNDLE_FORMAT, "keras_version": keras_version()}


def save_stripped(model: Any, path: Path) -> None:
    """Save weights and architecture only, then normalise the zip (see the module doc)."""
    bare = type(model).from_config(model.get_config())  # a fresh, never-compiled copy
    bare.set_weights(model.get_weights())
    bare.save(path)
    normalise_zip(path, metadata=fixed_metadata())


def fixed_metadata() -> bytes:
    """Keras's metadata.json with its save time replaced by a constant."""
    body = {"keras_version": keras_version(), "date_saved": FIXED_DATE_SAVED}
    return json.dumps(body).encode()


def normalise_zip(path: Path, *, metadata: bytes | None = None) -> None:
    """Rewrite a zip with fixed member times and modes (and, for a .keras file, a fixed
    ``metadata.json``), keeping member order, names, bodies and compression."""
    with zipfile.ZipFile(path) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as dst:
        for info, body in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            if metadata is not None and info.filename == "metadata.json":
                body = metadata
            dst.writestr(fixed, body)
    tmp.replace(path)


def fix_mtimes(folder: Path) -> None:
    stamp = time.mktime((*FIXED_TIME, 0, 0, -1))
    for f in folder.iterdir():
        os.utime(f, (stamp, stamp))


def write_public(
    folder: Path, model: Any, x_val: np.ndarray, y_val: np.ndarray, card: ModelCard
) -> None:
    """Write a complete public bundle into ``folder`` (created here)."""
    folder.mkdir(parents=True)
    save_stripped(model, folder / "model.keras")
    # Uncompressed: a compressed size would depend on the images, not only their shape.
    np.savez(
        folder / "clean_val.npz", x=np.asarray(x_val, np.float32), y=np.asarray(y_val, np.int64)
    )
    normalise_zip(folder / "clean_val.npz")
    replace(card, format_version=BUNDLE_FORMAT, clean_split_size=int(len(y_val))).write(
        folder / "card.json"
    )
    fix_mtimes(folder)


def write_stamp(private_dir: Path) -> None:
    (private_dir / STAMP_FILE).write_text(json.dumps(bundle_stamp(), sort_keys=True))


def read_stamp(root: Path) -> dict[str, Any] | None:
    """The stamp of a built object, or None for one written before stamps existed."""
    path = root / "private" / STAMP_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def is_current(root: Path) -> bool:
    return read_stamp(root) == bundle_stamp()


def describe_stamp(stamp: dict[str, Any] | None) -> str:
    if stamp is None:
        return "format 1"
    return f"format {stamp.get('format')}, Keras {stamp.get('keras_version')}"


def migrate(root: Path) -> None:
    """Rewrite the public bundle of a built object in the current format, from its own
    model file and clean split (no retraining), then stamp it. Swaps folders so that an
    interrupted migration leaves either the old bundle or the new one, never half."""
    keras = import_tensorflow()

    public, fresh, old = root / "public", root / ".public-new", root / ".public-old"
    if not public.is_dir() and old.is_dir():  # a migration interrupted mid-swap
        old.rename(public)
    model = keras.saving.load_model(public / "model.keras", compile=False, safe_mode=True)
    with np.load(public / "clean_val.npz") as npz:
        x_val, y_val = npz["x"], npz["y"]
    card = ModelCard.read(public / "card.json")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    write_public(fresh, model, x_val, y_val, card)
    public.rename(old)
    fresh.rename(public)
    shutil.rmtree(old, ignore_errors=True)
    write_stamp(root / "private")
