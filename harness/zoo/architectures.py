"""Model architectures. Layer names are fixed per family so that clean and backdoored
models look alike; ``mnist_cnn_a`` follows the two-conv MNIST CNN of the BackFuzz report
("BackFuzz: An Automated Backdoor Detection Tool"), the face network's names follow the
CSAW-HackML 2020 contest's DeepID files, so the contest's weights load by name. Every layer
is named, the input too: Keras's automatic names count layers per process
(``input_layer_13``) and would leak the order in which a profile was built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.registry import Registry


def mnist_cnn_a(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The two-conv MNIST CNN of "BackFuzz: An Automated Backdoor Detection Tool": conv_1,
    pool_1, conv_2, pool_2, flatten, fc_1, output.

    conv_1 pads "same" so that the bottom-right pixel (that report's trigger) reaches
    pool_2; with valid padding the floor pooling would drop it.
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


def deepid(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The CSAW-HackML DeepID network (55x47x3 faces), with the contest's layer names.

    conv_1 20@4x4, pool_1, conv_2 40@3x3, pool_2, conv_3 60@3x3, pool_3; branch A:
    flatten_1(pool_3) -> fc_1 (160); branch B: conv_4 80@2x2 -> flatten_2 -> fc_2 (160);
    add_1 -> activation_1 (relu) -> output (softmax). Valid padding, stride 1. The
    weights-only contest files hold groups conv_1..conv_4, fc_1, fc_2 and output.
    """
    from keras import layers, models

    inp = layers.Input(input_shape, name="input")
    x = layers.Conv2D(20, 4, activation="relu", name="conv_1")(inp)
    x = layers.MaxPooling2D(2, name="pool_1")(x)
    x = layers.Conv2D(40, 3, activation="relu", name="conv_2")(x)
    x = layers.MaxPooling2D(2, name="pool_2")(x)
    x = layers.Conv2D(60, 3, activation="relu", name="conv_3")(x)
    pool_3 = layers.MaxPooling2D(2, name="pool_3")(x)
    fc_1 = layers.Dense(160, name="fc_1")(layers.Flatten(name="flatten_1")(pool_3))
    conv_4 = layers.Conv2D(80, 2, activation="relu", name="conv_4")(pool_3)
    fc_2 = layers.Dense(160, name="fc_2")(layers.Flatten(name="flatten_2")(conv_4))
    merged = layers.Activation("relu", name="activation_1")(layers.Add(name="add_1")([fc_1, fc_2]))
    out = layers.Dense(num_classes, activation="softmax", name="output")(merged)
    return models.Model(inp, out, name="classifier")


ARCHITECTURES: Registry[Callable[[tuple[int, ...], int], Any]] = Registry(
    "architecture", [("mnist_cnn_a", mnist_cnn_a), ("mnist_cnn_b", mnist_cnn_b), ("deepid", deepid)]
)


def build_architecture(name: str, input_shape: tuple[int, ...], num_classes: int) -> Any:
    return ARCHITECTURES[name](input_shape, num_classes)
