"""Every byte a submission can see, as numbers: the leakage audit's features.

A model's inbox is staged exactly as a run stages it (``harness.zoo.inbox``), once as a
detect task sees it and once as a repair or filter task sees it (with ``eval_x.npy``), and
every file in it is read as a contestant's code could read it, without running the model:

- the file system: each file's name, size, mtime and mode;
- zip containers (``model.keras``, ``clean_val.npz``): member count, and per member its
  position, size, compressed size, timestamp, compression, attributes and flags;
- JSON (``card.json``, and the model's ``metadata.json`` and ``config.json``): every leaf
  field, numbers as they are and strings as a stable hash;
- array headers (``.npy`` files and ``.npz`` members): dtype, shape and layout;
- the weights file (``model.weights.h5``): each dataset's path, shape and dtype and every
  HDF5 attribute; the clean split's summary statistics and class counts;
- the weight values themselves: per tensor mean, std, mean |w|, max |w|, L2 norm and
  kurtosis. These are the *weight signature* group, kept apart from the metadata: they
  are the backdoor itself, what a learned detector is meant to find, not a packaging leak.

Names are prefixed ``meta:`` or ``weights:``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import Track
from harness.zoo.evalset import draw_eval_set
from harness.zoo.inbox import anonymous_id, stage_inbox
from harness.zoo.store import ZooModel

STATS = ("mean", "std", "mean_abs", "max_abs", "l2", "kurtosis")
Features = dict[str, float]


def text_value(text: str) -> float:
    """A string as a number that is equal for equal strings (a stable hash)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32


def _leaves(prefix: str, value: Any, feats: Features) -> None:
    if isinstance(value, dict):
        feats[f"{prefix}:#keys"] = len(value)
        for key, child in value.items():
            _leaves(f"{prefix}.{key}", child, feats)
    elif isinstance(value, list):
        feats[f"{prefix}:#items"] = len(value)
        for i, child in enumerate(value):
            _leaves(f"{prefix}[{i}]", child, feats)
    elif isinstance(value, bool) or value is None:
        feats[prefix] = -1.0 if value is None else float(value)
    elif isinstance(value, (int, float)):
        feats[prefix] = float(value)
    else:
        feats[prefix] = text_value(str(value))


def json_features(prefix: str, raw: bytes, feats: Features) -> None:
    feats[f"{prefix}:bytes"] = len(raw)
    _leaves(prefix, json.loads(raw), feats)


def npy_header_features(prefix: str, raw_start: bytes, feats: Features) -> None:
    """dtype, shape and layout from the first bytes of a .npy stream."""
    stream = io.BytesIO(raw_start)
    major, _ = np.lib.format.read_magic(stream)
    reader = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = reader(stream)
    feats[f"{prefix}:header_bytes"] = stream.tell()
    feats[f"{prefix}:dtype"] = text_value(dtype.str)
    feats[f"{prefix}:ndim"] = len(shape)
    for i, dim in enumerate(shape):
        feats[f"{prefix}:shape[{i}]"] = dim
    feats[f"{prefix}:fortran"] = float(fortran)


def zip_features(prefix: str, path: Path, feats: Features) -> dict[str, bytes]:
    """Member table features; returns the members' bodies for the readers below."""
    bodies = {}
    with zipfile.ZipFile(path) as z:
        feats[f"{prefix}:members"] = len(z.infolist())
        feats[f"{prefix}:comment_bytes"] = len(z.comment)
        for pos, info in enumerate(z.infolist()):
            m = f"{prefix}/{info.filename}"
            feats[f"{m}:position"] = pos
            feats[f"{m}:size"] = info.file_size
            feats[f"{m}:compressed"] = info.compress_size
            feats[f"{m}:time"] = float("".join(f"{v:02d}" for v in info.date_time))
            feats[f"{m}:compress_type"] = info.compress_type
            feats[f"{m}:attr"] = info.external_attr
            feats[f"{m}:flags"] = info.flag_bits
            feats[f"{m}:system"] = info.create_system
            bodies[info.filename] = z.read(info)
    return bodies


def tensor_stats(w: np.ndarray) -> list[float]:
    w = np.asarray(w, np.float64).ravel()
    std = w.std()
    kurt = float(np.mean((w - w.mean()) ** 4) / std**4) if std > 0 else 0.0
    return [w.mean(), std, np.abs(w).mean(), np.abs(w).max(), np.linalg.norm(w), kurt]


def h5_features(raw: bytes, feats: Features) -> None:
    """The weights file: its structure and attributes (metadata) and the weight values'
    statistics (the weight signature)."""
    import h5py

    tensors: list[np.ndarray] = []
    with h5py.File(io.BytesIO(raw), "r") as f:
        for key, value in f.attrs.items():
            feats[f"meta:h5/:attr:{key}"] = text_value(str(value))

        def visit(name: str, obj: Any) -> None:
            for key, value in obj.attrs.items():
                feats[f"meta:h5/{name}:attr:{key}"] = text_value(str(value))
            if isinstance(obj, h5py.Dataset):
                w = obj[()]
                feats[f"meta:h5/{name}:dtype"] = text_value(str(w.dtype))
                for i, dim in enumerate(np.shape(w)):
                    feats[f"meta:h5/{name}:shape[{i}]"] = dim
                for stat, value in zip(STATS, tensor_stats(w), strict=True):
                    feats[f"weights:{name}:{stat}"] = value
                tensors.append(np.ravel(w))

        f.visititems(visit)
    feats["meta:h5:datasets"] = len(tensors)
    feats["meta:h5:params"] = sum(t.size for t in tensors)
    everything = np.concatenate(tensors) if tensors else np.zeros(1)
    for stat, value in zip(STATS, tensor_stats(everything), strict=True):
        feats[f"weights:all:{stat}"] = value


def clean_split_features(bodies: dict[str, bytes], feats: Features) -> None:
    for name, raw in bodies.items():
        npy_header_features(f"meta:clean_val.npz/{name}", raw[:4096], feats)
    x = np.load(io.BytesIO(bodies["x.npy"]))
    y = np.load(io.BytesIO(bodies["y.npy"]))
    feats["meta:clean_val:x_mean"] = float(np.mean(x))
    feats["meta:clean_val:x_std"] = float(np.std(x))
    for label, count in enumerate(np.bincount(np.asarray(y, np.int64))):
        feats[f"meta:clean_val:count[{label}]"] = count


def inbox_features(inbox: Path, feats: Features, tag: str) -> None:
    """Features of one staged inbox; ``tag`` names the task kind it was staged for."""
    for f in sorted(inbox.iterdir()):
        st = f.stat()
        feats[f"meta:{tag}:{f.name}:size"] = st.st_size
        feats[f"meta:{tag}:{f.name}:mtime"] = st.st_mtime
        feats[f"meta:{tag}:{f.name}:mode"] = st.st_mode
    if (inbox / "eval_x.npy").is_file():
        with open(inbox / "eval_x.npy", "rb") as fh:
            npy_header_features(f"meta:{tag}:eval_x.npy", fh.read(4096), feats)


def model_features(model: ZooModel, run_id: str = "audit") -> Features:
    """Every feature of one model, from its inbox as a detect task and as a repair or
    filter task would see it."""
    feats: Features = {}
    with tempfile.TemporaryDirectory(prefix="harness-audit-") as tmp:
        inbox = Path(tmp)
        anon = anonymous_id(run_id, model.id)
        stage_inbox(inbox, model, anon, None)
        inbox_features(inbox, feats, Track.DETECT.value)
        json_features("meta:card.json", (inbox / "card.json").read_bytes(), feats)
        bodies = zip_features("meta:model.keras", inbox / "model.keras", feats)
        for name in ("metadata.json", "config.json"):
            if name in bodies:
                json_features(f"meta:model.keras/{name}", bodies[name], feats)
        if "model.weights.h5" in bodies:
            h5_features(bodies["model.weights.h5"], feats)
        clean_split_features(
            zip_features("meta:clean_val.npz", inbox / "clean_val.npz", feats), feats
        )
        evs = draw_eval_set(model.test_sets(), seed=0)
        stage_inbox(inbox, model, anon, evs.x)
        inbox_features(inbox, feats, Track.REPAIR.value)
    return feats
