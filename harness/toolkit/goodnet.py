"""The GoodNet of the CSAW-HackML 2020 course project as one standard Keras model.

The contest's grader loads a model with plain ``keras.models.load_model``, takes the argmax
and prints accuracy; a GoodNet answers N (the class count) for inputs it rejects. So an
exported GoodNet must be built from standard Keras layers only (no Lambda, no custom
class) and have N+1 outputs, the last meaning "rejected".

``agreement_goodnet(bad, repaired)`` builds the decision of the course project report
(Liao Hu, "Final Project Report", NYU EL-GY-9163) "the repaired net's label where it
agrees with the BadNet, else N" from standard layers, for submissions to return from their
``export()`` method. ``harness.execution.goodnet`` exports and checks such files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Softmax outputs are multiplied by this and re-normalised: one-hot unless the top two
#: probabilities are within about 1e-3 of each other (such near-ties are rejected).
SHARPNESS = 1e4


def _renamed(model: Any, name: str) -> Any:
    """A copy of a functional or sequential model under another name (nested models in
    one file need distinct names)."""
    config = model.get_config()
    config["name"] = name
    copy = type(model).from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def agreement_goodnet(bad: Any, repaired: Any, name: str = "goodnet") -> Any:
    """The CSAW-HackML course report's GoodNet from standard layers: argmax = the shared
    label where both nets agree (after sharpening their softmax to one-hot), else N =
    rejected."""
    import keras
    from keras import layers

    inputs = keras.Input(tuple(bad.inputs[0].shape[1:]), name="image")
    sharp = []
    for net, label in ((_renamed(bad, "badnet"), "bad"), (_renamed(repaired, "repaired"), "good")):
        p = layers.Rescaling(SHARPNESS, name=f"{label}_sharpen")(net(inputs))
        sharp.append(layers.Activation("softmax", name=f"{label}_onehot")(p))
    agree = layers.Multiply(name="agree")(sharp)  # one-hot where the labels agree, else ~0
    reject = layers.Dense(
        1,
        kernel_initializer="zeros",
        name="rejected",
    )(agree)
    outputs = layers.Concatenate(name="output")([agree, reject])
    model = keras.Model(inputs, outputs, name=name)
    n = int(agree.shape[-1])
    model.get_layer("rejected").set_weights(
        [np.full((n, 1), -1.0, np.float32), np.ones(1, np.float32)]
    )  # 1 - sum(agree): about 1 where they disagree, about 0 where they agree
    return model
