"""Contest-format files written the way Keras 2.3 wrote them (for the import tests).

Keras 2 HDF5 layout: root attributes ``keras_version``, ``backend`` and, for full models,
``model_config`` (JSON) with the weights under ``model_weights``; weights-only files keep
the layer groups at the root. Each group lists ``weight_names`` such as
``conv_1/kernel:0`` and holds the arrays at those paths; ``layer_names`` lists every layer,
weightless ones included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np


def _write_weights(group: Any, model: Any) -> None:
    group.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.3.1"
    for layer in model.layers:
        g = group.create_group(layer.name)
        names = []
        for var, value in zip(layer.weights, layer.get_weights(), strict=True):
            name = f"{layer.name}/{var.name}:0"
            g.create_dataset(name, data=value)
            names.append(name.encode())
        g.attrs["weight_names"] = names


def write_weights_only(path: Path, model: Any) -> None:
    """A ``*_bd_weights.h5``: layer groups at the root."""
    with h5py.File(path, "w") as f:
        _write_weights(f, model)


def _init(name: str) -> dict:
    return {"class_name": name, "config": {"seed": None} if name != "Zeros" else {}}


def keras2_sequential_config(num_classes: int) -> dict:
    """A Keras 2.3 Sequential config whose first layer carries ``batch_input_shape``
    (Keras 3 refuses to load such a file directly)."""
    common = {"trainable": True, "dtype": "float32"}
    return {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_1",
            "layers": [
                {
                    "class_name": "Conv2D",
                    "config": {
                        **common,
                        "name": "conv_1",
                        "batch_input_shape": [None, 28, 28, 1],
                        "filters": 8,
                        "kernel_size": [3, 3],
                        "strides": [1, 1],
                        "padding": "valid",
                        "data_format": "channels_last",
                        "dilation_rate": [1, 1],
                        "activation": "relu",
                        "use_bias": True,
                        "kernel_initializer": _init("GlorotUniform"),
                        "bias_initializer": _init("Zeros"),
                        "kernel_regularizer": None,
                        "bias_regularizer": None,
                        "activity_regularizer": None,
                        "kernel_constraint": None,
                        "bias_constraint": None,
                    },
                },  # fmt: skip
                {
                    "class_name": "MaxPooling2D",
                    "config": {
                        **common,
                        "name": "pool_1",
                        "pool_size": [2, 2],
                        "padding": "valid",
                        "strides": [2, 2],
                        "data_format": "channels_last",
                    },
                },  # fmt: skip
                {
                    "class_name": "Flatten",
                    "config": {**common, "name": "flatten_1", "data_format": "channels_last"},
                },  # fmt: skip
                {
                    "class_name": "Dense",
                    "config": {
                        **common,
                        "name": "output",
                        "units": num_classes,
                        "activation": "softmax",
                        "use_bias": True,
                        "kernel_initializer": _init("GlorotUniform"),
                        "bias_initializer": _init("Zeros"),
                        "kernel_regularizer": None,
                        "bias_regularizer": None,
                        "activity_regularizer": None,
                        "kernel_constraint": None,
                        "bias_constraint": None,
                    },
                },  # fmt: skip
            ],
        },
    }


def sequential_twin(num_classes: int, seed: int = 0) -> Any:
    """A Keras 3 model with the same layers, to draw weights from and compare against."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu", name="conv_1"),
            layers.MaxPooling2D(2, name="pool_1"),
            layers.Flatten(name="flatten_1"),
            layers.Dense(num_classes, activation="softmax", name="output"),
        ]
    )


def write_keras2_sequential(path: Path, num_classes: int = 10, seed: int = 0) -> Any:
    """A full Keras 2.3 .h5 Sequential model; returns the twin holding the same weights."""
    twin = sequential_twin(num_classes, seed)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.3.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(keras2_sequential_config(num_classes)).encode()
        _write_weights(f.create_group("model_weights"), twin)
    return twin


def write_data(path: Path, x: np.ndarray, y: np.ndarray, *, nchw: bool = True) -> None:
    """A contest data file: pixels 0-255, (N, 3, 55, 47) unless ``nchw`` is False, float
    labels."""
    pixels = np.round(x * 255).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=pixels.transpose(0, 3, 1, 2) if nchw else pixels)
        f.create_dataset("label", data=y.astype(np.float64))
