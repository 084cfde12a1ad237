"""Pruning-aware attack (Liu, Dolan-Gavitt, Garg, "Fine-Pruning", RAID 2018, section 3.3).

1. train the model on clean data;
2. prune the last convolutional layer's ``prune_fraction`` most dormant channels (lowest
   mean activation on clean data), i.e. zero their kernels and biases: the layer the
   paper's pruning defense prunes (``conv_2`` on the MNIST nets);
3. re-train the pruned model on poisoned data (BadNets' checkerboard patch of ``size``
   pixels, one pixel in from ``corner``), so the backdoor lives in
   the channels a defender keeps;
4. re-instate the pruned channels with their clean weights and biases lowered by
   ``bias_shift`` standard deviations of their clean pre-activation, then lowered further
   until each is under half the least active kept channel's mean activation, so they are
   the least active on clean data and a pruning defender removes these decoys first.

A zeroed ReLU channel outputs 0 and gets no gradient, so it stays pruned through step 3.
The clean counterpart (``clean_counterpart = true``) runs the same four steps with clean
data in step 3, so a model's weight statistics never tell which procedure made it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.attacks.badnets import patch_trigger
from harness.attacks.base import AttackContext, Backdoor, single_target_map

#: Images used to measure channel activity (enough for a stable mean, cheap to run).
ACTIVITY_IMAGES = 2000
#: Most bias-lowering rounds for the decoys (each lowers by half a pre-activation std).
SINK_STEPS = 40


def _layer_model(model: Any, layer: str, pre_activation: bool = False) -> Any:
    import keras

    conv = model.get_layer(layer)
    if not pre_activation:
        return keras.Model(model.inputs, conv.output)
    return keras.Model(model.inputs, conv.input), conv


def channel_activity(model: Any, layer: str, x: np.ndarray) -> np.ndarray:
    """Mean post-activation output of each channel of ``layer`` over ``x``."""
    out = _layer_model(model, layer).predict(x, batch_size=256, verbose=0)
    return out.reshape(-1, out.shape[-1]).mean(axis=0)


def _pre_activation_std(model: Any, layer: str, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    feed, conv = _layer_model(model, layer, pre_activation=True)
    inputs = feed.predict(x, batch_size=256, verbose=0)
    kernel, bias = conv.get_weights()
    pre = tf.nn.conv2d(inputs, kernel, strides=1, padding=conv.padding.upper()) + bias
    return pre.numpy().reshape(-1, kernel.shape[-1]).std(axis=0)


def _sink_decoys(
    model: Any, layer: str, probe: np.ndarray, decoys: np.ndarray, spread: np.ndarray
) -> None:
    """Lower decoy biases until each decoy is under half the least active kept channel's
    mean activity, so a pruning defender removes every decoy first."""
    conv = model.get_layer(layer)
    kept = np.setdiff1d(np.arange(conv.filters), decoys)
    for _ in range(SINK_STEPS):
        activity = channel_activity(model, layer, probe)
        loud = activity[decoys] > 0.5 * activity[kept].min()
        if not loud.any():
            return
        kernel, bias = conv.get_weights()
        bias[decoys[loud]] -= 0.5 * spread[loud] + 1e-3
        conv.set_weights([kernel, bias])


def last_conv_layer(model: Any) -> str:
    """The name of ``model``'s last convolutional layer (the one the attack prunes)."""
    import keras

    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError("the pruning-aware attack needs a model with a Conv2D layer")
    return convs[-1]


def _implant(backdoor: Backdoor, ctx: AttackContext) -> Any:
    x, y, trainer = ctx.require_training(backdoor.attack)
    p = backdoor.params
    model = trainer.fit(trainer.new_model(), x, y)  # step 1
    p["layer"] = last_conv_layer(model)  # recorded in the private truth
    probe = x[np.random.default_rng(ctx.seed).choice(len(x), ACTIVITY_IMAGES, replace=False)]
    conv = model.get_layer(p["layer"])
    kernel, bias = (w.copy() for w in conv.get_weights())
    order = np.argsort(channel_activity(model, p["layer"], probe))
    pruned = np.sort(order[: int(round(p["prune_fraction"] * len(order)))])
    spread = _pre_activation_std(model, p["layer"], probe)[pruned]
    k2, b2 = kernel.copy(), bias.copy()
    k2[..., pruned] = 0.0
    b2[pruned] = 0.0
    conv.set_weights([k2, b2])  # step 2
    xp, yp = backdoor.poison_training(x, y, np.random.default_rng(ctx.seed + 1))
    model = trainer.fit(model, xp, yp)  # step 3: fine-tune the pruned model
    k3, b3 = conv.get_weights()
    k3[..., pruned] = kernel[..., pruned]
    b3[pruned] = bias[pruned] - p["bias_shift"] * spread
    conv.set_weights([k3, b3])  # step 4
    _sink_decoys(model, p["layer"], probe, pruned, spread)
    p["decoys"] = pruned.tolist()  # recorded in the private truth
    return model


def pruning_aware(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.1,
    size: int = 3,
    corner: str = "bottom-right",
    target: int = 0,
    prune_fraction: float = 0.5,
    bias_shift: float = 1.0,
    clean_counterpart: bool = False,
) -> Backdoor:
    """A BadNets patch trained into the pruned model; the pruned channels come back as decoys."""
    if not 0.0 < prune_fraction < 1.0:
        raise ValueError(f"prune_fraction must be in (0, 1), not {prune_fraction}")
    trigger = patch_trigger(
        ctx.input_shape, size, corner, 1, "checker", single_target_map(ctx.num_classes, target)
    )
    return Backdoor(
        "pruning_aware",
        () if clean_counterpart else (trigger,),
        poison_rate=poison_rate,
        asr_floor=0.9,
        params={"prune_fraction": prune_fraction, "bias_shift": bias_shift},
        implant_fn=_implant,
    )
