"""Projected gradient descent (Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep
Learning Models Resistant to Adversarial Attacks", ICLR 2018): the L-infinity attack that
raises a model's loss on the true labels within a ball of ``epsilon`` around each input.

The label-consistent backdoor (Turner, Tsipras, Madry, "Label-Consistent Backdoor
Attacks", 2019) uses it to make target-class training images hard to classify before it
stamps its trigger on them: the zoo's ``label_consistent`` recipe and the attack track's
reference hand-in both call this one function. Plain Keras and TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Images per gradient batch.
BATCH = 256


def pgd(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    epsilon: float,
    steps: int,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """``x`` moved by ``steps`` signed-gradient steps of 2.5 * epsilon / steps, each
    projected back into the ``epsilon`` ball and the input range, raising the model's
    cross-entropy on the labels ``y``."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    step = 2.5 * epsilon / steps
    lo, hi = input_range
    out = []
    for i in range(0, len(x), BATCH):
        x0 = tf.constant(x[i : i + BATCH])
        labels = tf.constant(y[i : i + BATCH])
        adv = tf.identity(x0)
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch(adv)
                loss = loss_fn(labels, model(adv, training=False))
            adv = adv + step * tf.sign(tape.gradient(loss, adv))
            adv = tf.clip_by_value(tf.clip_by_value(adv, x0 - epsilon, x0 + epsilon), lo, hi)
        out.append(adv.numpy())
    return np.concatenate(out).astype(np.float32) if out else x.astype(np.float32)
