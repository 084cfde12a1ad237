"""Model architectures. Layer names are fixed per family so that clean and backdoored
models look alike; the MNIST names follow BackFuzz (seed 000). Every layer is named,
the input too: Keras's automatic names count layers per process (``input_layer_13``)
and would leak the order in which a profile was built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import SpecError


def mnist_cnn_a(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """Seed 000's two-conv MNIST CNN: conv_1, pool_1, conv_2, pool_2, flatten, fc_1, output.

    conv_1 pads "same" so that the bottom-right pixel (seed 000's trigger) reaches pool_2;
    with valid padding the floor pooling would drop it.
    """
    from keras import layers, models

    return models.Sequential(
        [
            layers.Input(input_shape, name="input"),
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1"),
            layers.MaxPooling2D(2, name="pool_1"),
            layers.Conv2D(32, 3, activation="relu", name="conv_2"),
            layers.MaxPooling2D(2, name="pool_2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="fc_1"),
            layers.Dense(num_classes, activation="softmax", name="output"),
        ],
        name="classifier",
    )


def mnist_cnn_b(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """A second MNIST variant for diversity: wider 5x5 kernels, same layer names."""
    from keras import layers, models

    return models.Sequential(
        [
            layers.Input(input_shape, name="input"),
            layers.Conv2D(20, 5, activation="relu", name="conv_1"),
            layers.MaxPooling2D(2, name="pool_1"),
            layers.Conv2D(40, 5, activation="relu", name="conv_2"),
            layers.MaxPooling2D(2, name="pool_2"),
            layers.Flatten(name="flatten"),
            layers.Dense(100, activation="relu", name="fc_1"),
            layers.Dense(num_classes, activation="softmax", name="output"),
        ],
        name="classifier",
    )


ARCHITECTURES: dict[str, Callable[[tuple[int, ...], int], Any]] = {
    "mnist_cnn_a": mnist_cnn_a,
    "mnist_cnn_b": mnist_cnn_b,
}


def build_architecture(name: str, input_shape: tuple[int, ...], num_classes: int) -> Any:
    if name not in ARCHITECTURES:
        raise SpecError(
            f"unknown architecture {name!r}", fix=f"choose from: {', '.join(ARCHITECTURES)}"
        )
    return ARCHITECTURES[name](input_shape, num_classes)
