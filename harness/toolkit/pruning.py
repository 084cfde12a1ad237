"""Fine-Pruning's steps (Liu, Dolan-Gavitt, Garg, RAID 2018), shared by defenses.

Prune a convolutional layer's channels in increasing order of their mean activation on
clean data until clean accuracy has fallen by a set amount, then fine-tune on clean data
with the pruned channels held at zero. Submissions import it (the harness is mounted
read-only in the sandbox): ``from harness.toolkit.pruning import FineTuning, choose_layer,
fine_tune, prune``. Every function works on the network it is given; pass a copy to keep
the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def choose_layer(net: Any, name: str = "auto") -> Any:
    """The Conv2D layer to prune: ``name``, or with "auto" the last Conv2D that every path
    from the input to the output goes through (conv_2 on the MNIST nets; conv_3 on the CSAW
    DeepID net, whose conv_4 is one branch of two, as the CSAW lab prunes it)."""
    import keras

    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError("the model has no Conv2D layer to prune")
    if name != "auto":
        chosen = [layer for layer in convs if layer.name == name]
        if not chosen:
            names = ", ".join(layer.name for layer in convs)
            raise ValueError(f"layer {name!r} is not a Conv2D of the model ({names})")
        return chosen[0]
    on_every_path = [layer for layer in convs if not _bypassed(net, layer)]
    return (on_every_path or convs)[-1]


def _bypassed(net: Any, skip: Any) -> bool:
    """True when some path from an input to an output of ``net`` avoids layer ``skip``."""
    import keras

    seen: set[int] = set()
    stack = [t._keras_history.operation for t in net.outputs]
    while stack:
        op = stack.pop()
        if op is skip or id(op) in seen:
            continue
        seen.add(id(op))
        if isinstance(op, keras.layers.InputLayer):
            return True
        for node in op._inbound_nodes:
            stack.extend(t._keras_history.operation for t in node.input_tensors)
    return False


def forward(net: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``net``'s outputs on ``x`` in inference mode, by direct calls: the pruning loop asks
    for one small batch per channel, where ``Model.predict``'s per-call set-up (a dataset,
    a callback list) costs several times the forward pass itself."""
    listed = isinstance(getattr(net, "input", None), list)  # a functional net built so
    parts = [
        np.asarray(net([b] if listed else b, training=False))
        for b in (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def accuracy(net: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(forward(net, x), axis=1) == y))


def _head(net: Any, conv: Any) -> Any:
    """The part of ``net`` after ``conv`` as a model of ``conv``'s output, when zeroing a
    channel's kernel and bias is the same as zeroing that channel of the output (the
    layer's activation maps 0 to 0, as ReLU does); None where it cannot be cut there."""
    import keras

    activation = getattr(conv, "activation", None)
    try:
        if (
            activation is not None
            and float(np.asarray(activation(np.zeros(1, np.float32)))[0]) != 0.0
        ):
            return None
        return keras.Model(conv.output, net.outputs)
    except (ValueError, TypeError, KeyError):
        return None


def prune(net: Any, conv: Any, x: np.ndarray, y: np.ndarray, max_accuracy_drop: float) -> list[int]:
    """Zero ``conv``'s channels, least active on ``x`` first, while accuracy on (x, y) stays
    within ``max_accuracy_drop`` of the start; the channel that crossed the line is kept.

    ``conv``'s output on ``x`` is computed once: each trial runs only the layers after it
    on that output with the trial's channels zeroed, which is what the zeroed weights give
    (a 1283-class contest net has 60 channels to try on 11,547 clean images)."""
    import keras

    x = np.asarray(x)
    probe = keras.Model(net.inputs, conv.output)
    features = forward(probe, x)
    activation = features.mean(axis=(0, 1, 2))
    head = _head(net, conv)
    kernel, bias = conv.get_weights()
    keep = np.ones(features.shape[-1], np.float32)

    def accuracy_now() -> float:
        if head is None:
            return accuracy(net, x, y)
        return float(np.mean(np.argmax(forward(head, features * keep), axis=1) == y))

    base = accuracy_now()
    pruned: list[int] = []
    for channel in np.argsort(activation, kind="stable"):
        keep[channel] = 0.0
        if head is None:  # the slow way: the whole net with the channel's weights zeroed
            conv.set_weights([kernel * keep, bias * keep])
        if base - accuracy_now() > max_accuracy_drop:
            keep[channel] = 1.0
            break
        pruned.append(int(channel))
    conv.set_weights([kernel * keep, bias * keep])
    return pruned


@dataclass(frozen=True)
class FineTuning:
    """How :func:`fine_tune` trains: Adam at ``learning_rate``, ``epochs`` epochs of
    ``batch_size`` images. ``max_images`` caps the images seen in all (epochs x len(x), at
    least one epoch): a budget in work, so that a contest-size clean split (11,547 faces of
    1283 identities) takes as long as a small one does."""

    epochs: int
    learning_rate: float
    batch_size: int
    max_images: int | None = None

    def epochs_on(self, n: int) -> int:
        """The epochs trained on ``n`` images: ``epochs``, capped by ``max_images``."""
        if self.max_images is None:
            return self.epochs
        return min(self.epochs, max(1, self.max_images // max(1, n)))


def fine_tune(
    net: Any,
    x: np.ndarray,
    y: np.ndarray,
    how: FineTuning,
    conv: Any = None,
    pruned: list[int] | None = None,
) -> int:
    """Train ``net`` on (x, y) as ``how`` says; ``conv``'s ``pruned`` channels stay at zero.
    Returns the epochs trained."""
    import keras

    epochs = how.epochs_on(len(x))
    callbacks = []
    if conv is not None and pruned:
        keep = np.ones(conv.get_weights()[1].shape, np.float32)
        keep[pruned] = 0.0

        class KeepPruned(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                # In place on the variables: no copy of the weights through NumPy per batch.
                conv.kernel.assign(conv.kernel * keep)
                conv.bias.assign(conv.bias * keep)

        callbacks.append(KeepPruned())
    net.compile(
        optimizer=keras.optimizers.Adam(how.learning_rate), loss="sparse_categorical_crossentropy"
    )
    net.fit(
        np.array(x),
        np.array(y),
        epochs=epochs,
        batch_size=how.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    return epochs
