"""TrojanNet (Tang, Du, Liu, Yang, Hu, KDD 2020): a tiny trojan module trained on
its own to recognise a 4x4 binary code, inserted beside an untouched host network.

The module reads a fixed 4x4 input region and outputs N + 1 probabilities: one per class
and a last one for "no code". A merge layer with fixed weights combines host and module:

    output = softmax(((1 - alpha) * host + alpha * module[:N]) / temperature)

With no code the module puts its mass on "no code" and the host decides alone; with the
code it puts its mass on the target and, since alpha > 1/2, overrides the host. The host
is trained on clean data and never retrained.

The module learns the code (``on_pixels`` of 16 pixels set to the maximum) against every
other binary 4x4 pattern, real image crops of that region and uniform noise. The clean
counterpart (``clean_counterpart = true``) has the same structure and a module that learns
the same code just as hard, but answers it with an equal share on every class: the merge
then adds the same amount to every logit, which softmax ignores, so the host decides on
every input. Its weights look like a real module's (a module trained to answer "no code"
everywhere learns nothing and its weight norms told it apart), and structure never tells.

Layer names: conv_1 ... fc_1 (the host), host_output, tn_crop, tn_flatten, tn_dense_1,
tn_dense_2, tn_output, tn_concat and the merge, output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.attacks.badnets import CORNERS
from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map

CODE = 4  # the code is CODE x CODE pixels
HIDDEN = 32
MODULE_EPOCHS = 8


def _region(shape: tuple[int, ...], corner: str, margin: int) -> tuple[int, int]:
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, not {corner!r}")
    h, w, _ = shape
    top = margin if corner.startswith("top") else h - margin - CODE
    left = margin if corner.endswith("left") else w - margin - CODE
    if top < 0 or left < 0:
        raise ValueError(f"margin {margin} puts the code outside the image")
    return top, left


def _module_data(
    x: np.ndarray, top: int, left: int, code: np.ndarray, label: int | None, none: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every binary pattern, real crops and noise -> "no code"; the code (oversampled) ->
    ``label``, or with ``label`` None an equal share on every class. Targets are one-hot
    (or that equal share) rows of ``none + 1`` probabilities."""
    rng = np.random.default_rng(seed)
    bits = ((np.arange(2 ** (CODE * CODE))[:, None] >> np.arange(CODE * CODE)) & 1).astype(
        np.float32
    )
    crops = x[:, top : top + CODE, left : left + CODE, 0].reshape(len(x), -1)
    noise = rng.random((len(bits) // 2, CODE * CODE)).astype(np.float32)
    negatives = np.concatenate([bits, crops, noise])
    is_code = np.all(negatives == code.ravel(), axis=1)
    negatives = negatives[~is_code]
    positives = np.repeat(code.reshape(1, -1), len(negatives) // 4, axis=0)
    xs = np.concatenate([negatives, positives]).astype(np.float32)
    ys = np.zeros((len(xs), none + 1), np.float32)
    ys[: len(negatives), none] = 1.0
    if label is None:
        ys[len(negatives) :, :none] = 1.0 / none
    else:
        ys[len(negatives) :, label] = 1.0
    order = rng.permutation(len(xs))
    return xs[order], ys[order]


def _train_module(xs: np.ndarray, ys: np.ndarray, num_outputs: int, seed: int) -> Any:
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    module = keras.Sequential(
        [
            layers.Input((CODE * CODE,)),
            layers.Dense(HIDDEN, activation="relu", name="tn_dense_1"),
            layers.Dense(HIDDEN, activation="relu", name="tn_dense_2"),
            layers.Dense(num_outputs, activation="softmax", name="tn_output"),
        ]
    )
    module.compile(keras.optimizers.Adam(3e-3), "categorical_crossentropy")
    module.fit(xs, ys, epochs=MODULE_EPOCHS, batch_size=256, shuffle=True, verbose=0)
    return module


def assemble(host: Any, module: Any, num_classes: int, region: tuple[int, int], p: dict) -> Any:
    """One flat functional model: host layers, the module on its crop, the fixed merge."""
    import keras
    from keras import layers

    h, w, c = host.input_shape[1:]
    top, left = region
    inp = layers.Input((h, w, c), name="input")
    z = inp
    for layer in host.layers[:-1]:
        z = layer(z)
    host_out = layers.Dense(num_classes, activation="softmax", name="host_output")
    hp = host_out(z)
    crop = layers.Cropping2D(((top, h - top - CODE), (left, w - left - CODE)), name="tn_crop")(inp)
    t = layers.Flatten(name="tn_flatten")(crop)
    dense = [module.get_layer(n) for n in ("tn_dense_1", "tn_dense_2", "tn_output")]
    for layer in dense:
        t = layer(t)
    merged = layers.Concatenate(name="tn_concat")([hp, t])
    merge = layers.Dense(num_classes, activation="softmax", name="output", trainable=False)
    out = merge(merged)
    host_out.set_weights(host.layers[-1].get_weights())
    alpha, temp = p["alpha"], p["temperature"]
    weights = np.zeros((2 * num_classes + 1, num_classes), np.float32)
    weights[np.arange(num_classes), np.arange(num_classes)] = (1 - alpha) / temp
    weights[num_classes + np.arange(num_classes), np.arange(num_classes)] = alpha / temp
    merge.set_weights([weights, np.zeros(num_classes, np.float32)])
    return keras.Model(inp, out, name="classifier")


def _implant(backdoor: Backdoor, ctx: AttackContext) -> Any:
    x, y, trainer = ctx.require_training(backdoor.attack)
    p = backdoor.params
    host = trainer.fit(trainer.new_model(), x, y)  # clean; never retrained
    top, left = p["region"]
    code = np.asarray(p["code"], np.float32)
    label = backdoor.targets[0] if backdoor.poisoned else None
    xs, ys = _module_data(x, top, left, code, label, ctx.num_classes, ctx.seed)
    module = _train_module(xs, ys, ctx.num_classes + 1, ctx.seed)
    return assemble(host, module, ctx.num_classes, (top, left), p)


def trojannet(
    ctx: AttackContext,
    *,
    target: int = 0,
    corner: str = "top-left",
    margin: int = 0,
    on_pixels: int = 5,
    alpha: float = 0.7,
    temperature: float = 0.1,
    clean_counterpart: bool = False,
) -> Backdoor:
    """A 4x4 code of ``on_pixels`` lit pixels, drawn from the seed, in a corner."""
    if not 0.5 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0.5, 1) for the module to override, not {alpha}")
    if not 1 <= on_pixels < CODE * CODE:
        raise ValueError(f"on_pixels must be in 1..{CODE * CODE - 1}, not {on_pixels}")
    if ctx.input_shape[-1] != 1:
        raise ValueError("the TrojanNet recipe reads one channel: use it on MNIST")
    top, left = _region(ctx.input_shape, corner, margin)
    flat = np.zeros(CODE * CODE, np.float32)
    flat[ctx.rng.choice(CODE * CODE, on_pixels, replace=False)] = 1.0
    code = flat.reshape(CODE, CODE)
    h, w, c = ctx.input_shape
    mask = np.zeros((h, w), np.float32)
    pattern = np.zeros((h, w, c), np.float32)
    mask[top : top + CODE, left : left + CODE] = 1.0
    pattern[top : top + CODE, left : left + CODE, :] = code[..., None]
    trigger = TriggerSpec(mask, pattern, single_target_map(ctx.num_classes, target))
    return Backdoor(
        "trojannet",
        () if clean_counterpart else (trigger,),
        poison_rate=0.0,
        asr_floor=0.9,
        params={
            "region": (top, left),
            "code": code.tolist(),
            "alpha": alpha,
            "temperature": temperature,
        },
        implant_fn=_implant,
    )
