"""CSAW-HackML contest files: Keras 2 models (full or weights-only) and HDF5 data sets.

- Data: HDF5 with keys ``data`` and ``label``; ``data`` is (N, 3, 55, 47) (transposed to
  NHWC here) or already NHWC, pixels 0-255; labels may be stored as floats.
- Full models: Keras 2 ``.h5`` files (``model_config`` attribute, ``model_weights``
  group). Keras 3 loads many directly; files it cannot read (Keras 2.3 Sequential models
  with ``batch_input_shape``, say) are rebuilt from their stored config and their
  weights set layer by layer, by name.
- Weights-only files (``*_bd_weights.h5``): groups conv_1..conv_4, fc_1, fc_2, output,
  loaded into the DeepID architecture (or another named one) by layer name.

Every problem a user's file can have is a ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.executors.tf_runtime import import_tensorflow

FACE_SHAPE = (55, 47, 3)


def _h5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(
            f"not an HDF5 file ({exc})", path=path, fix="pass the contest's .h5 file"
        ) from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- data -----------------------------------------------------------------------------------
def read_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from a contest data file: x NHWC float32 with the stored pixel values."""
    with _h5(path) as f:
        missing = [k for k in ("data", "label") if k not in f]
        if missing:
            raise DataError(
                f"no {' or '.join(repr(k) for k in missing)} key (has: {', '.join(f.keys())})",
                path=path,
                fix="a contest data file holds 'data' (N,3,55,47) and 'label' (N,)",
            )
        x = np.asarray(f["data"][()], np.float32)
        y_raw = np.asarray(f["label"][()]).ravel()
    if x.ndim != 4:
        raise DataError(
            f"'data' has shape {x.shape}, not 4-D",
            path=path,
            fix="store images as (N,3,H,W) or (N,H,W,3)",
        )
    if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # the contest's (N, C, H, W)
    if len(x) != len(y_raw):
        raise DataError(
            f"{len(x)} images but {len(y_raw)} labels", path=path, fix="store one label per image"
        )
    if not np.all(np.isfinite(x)):
        raise DataError("'data' holds NaN or infinite values", path=path, fix="re-export the data")
    if not np.all(np.equal(np.mod(y_raw, 1), 0)) or (len(y_raw) and y_raw.min() < 0):
        raise DataError("labels must be whole numbers >= 0", path=path, fix="store class indices")
    return x, y_raw.astype(np.int64)


# -- models ---------------------------------------------------------------------------------
def _group_weights(group: Any) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weight arrays, in the order Keras 2 stored them."""
    found = {}
    for name in (_text(n) for n in group.attrs.get("layer_names", [])):
        layer = group[name]
        found[name] = [np.asarray(layer[_text(w)][()]) for w in layer.attrs.get("weight_names", [])]
    return {k: v for k, v in found.items() if v}


def set_weights_by_name(model: Any, weights: dict[str, list[np.ndarray]], path: Path) -> None:
    names = {layer.name for layer in model.layers if layer.weights}
    unknown = sorted(set(weights) - names)
    missing = sorted(names - set(weights))
    if unknown or missing:
        raise DataError(
            f"the file's layers do not match the architecture (unknown: {unknown or '-'}; "
            f"missing: {missing or '-'})",
            path=path,
            fix="pass --arch with the network the weights were trained for",
        )
    for name, arrays in weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise DataError(
                f"layer {name}: weights {[a.shape for a in arrays]}, architecture wants {expected}",
                path=path,
                fix="check --arch and the number of classes",
            )
        layer.set_weights(arrays)


def _keras3_config(node: Any) -> Any:
    """Rewrite a Keras 2 config for Keras 3: batch_input_shape -> an explicit input."""
    if isinstance(node, list):
        return [_keras3_config(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _keras3_config(v) for k, v in node.items()}
    cfg = node.get("config")
    if isinstance(cfg, dict) and node.get("class_name") == "InputLayer":
        shape = cfg.pop("batch_input_shape", None)
        if shape is not None:
            cfg["batch_shape"] = shape
    return node


def _layer(spec: dict, path: Path) -> Any:
    """One Keras 2 layer config as a Keras 3 layer of the same class."""
    keras = import_tensorflow()

    cls = getattr(keras.layers, str(spec.get("class_name")), None)
    if cls is None:
        raise DataError(
            f"layer class {spec.get('class_name')!r} is not a built-in Keras layer",
            path=path,
            fix="custom layers cannot be imported; save the weights and use --weights-only",
        )
    try:
        return cls.from_config(spec["config"])
    except Exception as exc:  # noqa: BLE001 - a config Keras 3 cannot take is the file's
        raise DataError(
            f"layer {spec['config'].get('name')!r} ({spec['class_name']}): {exc}",
            path=path,
            fix="save the weights only and import with --weights-only --arch NAME",
        ) from None


def _rebuild(config: dict, path: Path) -> Any:
    keras = import_tensorflow()

    config = _keras3_config(config)
    if config.get("class_name") == "Sequential":
        layers = (
            config["config"]["layers"] if isinstance(config["config"], dict) else config["config"]
        )
        first = layers[0]["config"] if layers else {}
        shape = first.pop("batch_input_shape", None)
        model = keras.Sequential(name=_text(config["config"].get("name", "sequential")))
        if shape is not None:
            model.add(keras.Input(batch_shape=tuple(shape), name="input"))
        for layer in layers:
            if layer["class_name"] == "InputLayer":
                continue
            layer["config"].pop("batch_input_shape", None)
            model.add(_layer(layer, path))
        return model
    try:
        return keras.models.model_from_json(json.dumps(config))
    except Exception as exc:  # noqa: BLE001 - any failure is the user's file's
        raise DataError(
            f"Keras 3 cannot rebuild the stored model config ({type(exc).__name__}: {exc})",
            path=path,
            fix="save the weights only and import with --weights-only --arch NAME",
        ) from None


def is_full_model(path: Path) -> bool:
    """A full Keras 2 model file (it stores ``model_config``), not a weights-only one."""
    with _h5(path) as f:
        return "model_config" in f.attrs


def load_keras2_model(path: Path) -> tuple[Any, str]:
    """A full Keras 2 .h5 model: (model, how it was loaded: 'direct' or 'rebuilt')."""
    keras = import_tensorflow()

    with _h5(path) as f:
        if "model_config" not in f.attrs:
            raise DataError(
                "no model_config: this is a weights-only file",
                path=path,
                fix="`harness zoo import` loads it into --arch (default deepid)",
            )
        config = json.loads(_text(f.attrs["model_config"]))
        weights = _group_weights(f.get("model_weights", f))
    try:
        return keras.models.load_model(path, compile=False), "direct"
    except Exception:  # noqa: BLE001 - Keras 3 refuses some Keras 2.3 files; rebuild those
        model = _rebuild(config, path)
    set_weights_by_name(model, weights, path)
    return model, "rebuilt"


def load_weights_only(path: Path, arch: str, num_classes: int | None = None) -> Any:
    """A weights-only file (layer groups at the top) loaded into ``arch`` by layer name."""
    from harness.zoo.architectures import build_architecture

    with _h5(path) as f:
        group = f.get("model_weights", f)
        weights = _group_weights(group)
    if not weights:
        raise DataError("no layer weights found", path=path, fix="pass a Keras 2 weights file")
    if num_classes is None:
        out = weights.get("output")
        if not out:
            raise DataError(
                "no 'output' layer to read the class count from", path=path, fix="pass --classes"
            )
        num_classes = int(out[-1].shape[0])
    model = build_architecture(
        arch, FACE_SHAPE if arch == "deepid" else _input_shape(arch), num_classes
    )
    set_weights_by_name(model, weights, path)
    return model


def _input_shape(arch: str) -> tuple[int, ...]:
    return {"mnist_cnn_a": (28, 28, 1), "mnist_cnn_b": (28, 28, 1)}.get(arch, FACE_SHAPE)
