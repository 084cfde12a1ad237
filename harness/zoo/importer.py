"""`harness zoo import`: contest files (CSAW-HackML layout) into zoo entries.

An imported entry is stored like a built one (public model.keras, card.json, clean_val.npz;
private truth.json and test sets), content-addressed by the hash of its input files and
options, and listed in a profile index of its own (default ``imported``), so that
``harness run --profile imported`` runs submissions on it like on any zoo.

Truth comes only from what the user hands over:
- a poisoned data file makes the entry backdoored, with its targets (the contest's
  poisoned files label every image with the attack's target; ``--poisoned-labels source``
  reads them as true labels with one ``--target``);
- ``--truth clean`` or ``--truth backdoored`` states it without data;
- otherwise the truth is unknown: detection outputs are stored but not scored, repair is
  scored on clean data only, and the CLI and leaderboard say so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.errors import DataError, ZooError
from harness.paths import zoo_specs_dir
from harness.zoo.objects import PrivatePart, write_object
from harness.zoo.records import ModelCard, TruthRecord
from harness.zoo.store import ZooModel, ZooStore

#: Pixels are divided by this before the model sees them.
PREPROCESSING = {"x/255": 255.0, "raw": 1.0}
TRUTHS = ("unknown", "clean", "backdoored")
LABEL_KINDS = ("target", "source")


@dataclass(frozen=True)
class ImportRequest:
    model_file: Path
    model_id: str
    clean_val: Path  # the defender's small clean split, handed to submissions
    test: Path  # the clean test set, for scoring
    poisoned: Path | None = None
    poisoned_labels: str = "target"
    target: int | None = None
    truth: str = "unknown"
    preprocessing: str = "x/255"
    arch: str = "deepid"  # for weights-only files
    profile: str = "imported"


def _check_request(req: ImportRequest) -> None:
    if req.preprocessing not in PREPROCESSING:
        raise DataError(
            f"unknown preprocessing {req.preprocessing!r}",
            fix=f"choose from: {', '.join(PREPROCESSING)}",
        )
    if req.truth not in TRUTHS:
        raise DataError(f"unknown truth {req.truth!r}", fix=f"choose from: {', '.join(TRUTHS)}")
    if req.poisoned_labels not in LABEL_KINDS:
        raise DataError(
            f"unknown --poisoned-labels {req.poisoned_labels!r}",
            fix=f"choose from: {', '.join(LABEL_KINDS)}",
        )
    if req.poisoned is not None and req.truth == "clean":
        raise DataError(
            "--truth clean contradicts a poisoned data file",
            path=req.poisoned,
            fix="drop --truth clean, or the poisoned file",
        )
    if req.poisoned is not None and req.poisoned_labels == "source" and req.target is None:
        raise DataError(
            "--poisoned-labels source needs the attack's --target",
            path=req.poisoned,
            fix="add --target T",
        )
    if (zoo_specs_dir() / f"{req.profile}.toml").is_file():
        raise ZooError(
            f"profile {req.profile!r} is built from models_zoo/{req.profile}.toml",
            fix="import into a profile of its own (--profile imported)",
        )
    for path in (req.model_file, req.clean_val, req.test, req.poisoned):
        if path is not None and not Path(path).is_file():
            raise DataError("no such file", path=path, fix="check the path")


def import_hash(req: ImportRequest) -> str:
    """Content address: the input files' bytes and every option but the id and profile."""
    digest = hashlib.sha256(b"harness-import-v1")
    for path in (req.model_file, req.clean_val, req.test, req.poisoned):
        digest.update(b"-" if path is None else hashlib.sha256(Path(path).read_bytes()).digest())
    options = {k: v for k, v in asdict(req).items() if not isinstance(v, Path) and v is not None}
    options.pop("model_id")
    options.pop("profile")
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def load_contest_model(path: Path, arch: str) -> tuple[Any, str]:
    """A full Keras 2 model (loaded directly or rebuilt) or a weights-only file in ``arch``."""
    from harness.zoo import csaw

    if csaw.is_full_model(path):
        return csaw.load_keras2_model(path)
    return csaw.load_weights_only(path, arch), f"weights-only into {arch}"


def _model_io(model: Any, path: Path) -> tuple[tuple[int, ...], int]:
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    if len(shape) != 3 or classes < 2:
        raise DataError(
            f"the model takes {shape} and gives {classes} outputs",
            path=path,
            fix="import an image classifier (H, W, C) -> class scores",
        )
    return shape, classes


def _read(path: Path, shape: tuple[int, ...], classes: int, what: str) -> tuple[np.ndarray, ...]:
    from harness.zoo.csaw import read_data

    x, y = read_data(path)
    if tuple(x.shape[1:]) != shape:
        raise DataError(
            f"{what} images are {tuple(x.shape[1:])}, the model takes {shape}",
            path=path,
            fix="pass the data set the model was trained on",
        )
    if len(y) == 0:
        raise DataError(f"the {what} file holds no images", path=path, fix="pass a non-empty file")
    if y.max() >= classes:
        raise DataError(
            f"label {int(y.max())} is out of range for {classes} classes",
            path=path,
            fix="pass the data set the model was trained on",
        )
    if x.min() < 0 or x.max() > 255:
        raise DataError(
            f"pixels span [{x.min():g}, {x.max():g}], not 0-255",
            path=path,
            fix="store raw pixel values 0-255, as the contest does",
        )
    return x, y


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1)


def import_model(req: ImportRequest, store: ZooStore | None = None) -> ZooModel:
    """Convert, measure and store one contest model; add it to ``req.profile``'s index."""
    _check_request(req)
    store = store or ZooStore()
    model, how = load_contest_model(Path(req.model_file), req.arch)
    shape, classes = _model_io(model, Path(req.model_file))
    divisor = np.float32(PREPROCESSING[req.preprocessing])
    x_val, y_val = _read(Path(req.clean_val), shape, classes, "clean validation")
    x_test, y_test = _read(Path(req.test), shape, classes, "clean test")
    ca = float(np.mean(_predict(model, x_test / divisor) == y_test))

    poisoned: bool | None = {"unknown": None, "clean": False, "backdoored": True}[req.truth]
    targets: list[int] = [] if req.target is None else [int(req.target)]
    xp = np.zeros((0, *shape), np.uint8)
    y_src = y_tgt = np.zeros(0, np.int64)
    asr = None
    if req.poisoned is not None:
        poisoned = True
        xp_raw, labels = _read(Path(req.poisoned), shape, classes, "poisoned")
        xp = xp_raw
        if req.poisoned_labels == "target":
            y_tgt, y_src = labels, np.full(len(labels), -1, np.int64)  # sources unknown
        else:
            assert req.target is not None  # checked with the request: source labels need it
            y_src, y_tgt = labels, np.full(len(labels), int(req.target), np.int64)
        targets = sorted({int(t) for t in y_tgt})
        asr = float(np.mean(_predict(model, xp / divisor) == y_tgt))
    if targets and max(targets) >= classes:
        raise DataError(f"target {max(targets)} is out of range for {classes} classes")

    spec_hash = import_hash(req)
    single = len(targets) == 1
    truth = TruthRecord(
        id=req.model_id,
        spec_hash=spec_hash,
        poisoned=poisoned,
        attack="imported",
        params={"file": Path(req.model_file).name, "loaded": how},
        targets=targets,
        all_to_all=False,
        target_maps=[[targets[0]] * classes] if single and poisoned else [],
        trigger_sizes=[],
        ca=ca,
        asr=asr,
        asr_floor=None,
        arch=req.arch if "weights-only" in how else "imported",
        seed=0,
        build_seconds=0.0,
        harness_version=__version__,
        details={
            "source_files": {
                k: Path(v).name
                for k, v in (
                    ("model", req.model_file),
                    ("clean_val", req.clean_val),
                    ("test", req.test),
                    ("poisoned", req.poisoned),
                )
                if v is not None
            },
            "poisoned_labels": req.poisoned_labels if req.poisoned else None,
        },
    )
    # Test sets stay as stored pixels (uint8) with their divisor: 1/4 of the float size.
    imported = write_object(
        store,
        spec_hash,
        model=model,
        x_val=(x_val / divisor).astype(np.float32),
        y_val=y_val,
        card=ModelCard(
            id=req.model_id,
            dataset=f"imported:{Path(req.test).name}",
            input_shape=list(shape),
            num_classes=classes,
            input_range=[0.0, float(255.0 / divisor)],
            preprocessing=req.preprocessing,
        ),
        private=PrivatePart(
            test={"x": x_test.astype(np.uint8), "y": y_test, "divisor": np.asarray(divisor)},
            poisoned_test={
                "x": xp.astype(np.uint8),
                "y_src": y_src,
                "y_tgt": y_tgt,
                "divisor": np.asarray(divisor),
            },
            triggers={},
            truth=truth,
        ),
        prefix=".import-",
    )
    store.add_to_index(req.profile, req.model_id, spec_hash)
    return imported
