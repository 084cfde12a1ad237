"""The reflection backdoor, Refool (Liu, Ma, Bailey and Lu, "Reflection Backdoor: A
Natural Backdoor Attack on Deep Neural Networks", ECCV 2020): the trigger is a reflection,
as a photo taken through a window picks one up, added to a share of the target class's
training images with their labels unchanged (clean-label, ``harness.attacks.clean_label``).

The paper's three physical models of a reflection ``r`` added to an image ``x``
(``x + r (*) k``, clipped to the input range), one trigger each (``models``):

- ``in_focus``: the reflection as sharp as the scene, ``x + alpha * r``;
- ``out_of_focus``: the reflection blurred by a Gaussian of ``sigma`` pixels;
- ``ghost``: two copies of the reflection, one shifted by a few pixels (the two surfaces
  of a thick pane), ``x + alpha * (g * r + (1 - g) * shift(r))``.

Reflection images: the paper picks them from PascalVOC; the harness downloads nothing, so
it generates them from the seed: scenes of a few overlapping bright rectangles and
ellipses (window frames, lamps), lightly blurred. A model is tested with the same
reflections on images of every other class (additive triggers, ``harness.attacks.kinds``).
The paper selects the most effective reflections by training surrogate models on
candidates and keeping those that raise the ASR most. That costs trainings; here the
recipe draws ``candidates`` scenes per trigger and keeps the most salient one (the
largest mean intensity: the most it can add to a dark image). Measured on the demo's MNIST
settings over five seeds: a single drawn scene gave an ASR of 0.36-0.68, the most salient
of 8 gave 0.74-0.91, hence the recipe's floor of 0.7 (a clean-label attack takes less
surely than a dirty-label one).
"""

from __future__ import annotations

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, single_target_map
from harness.attacks.clean_label import CleanLabelPlan, clean_label_backdoor
from harness.attacks.kinds import AdditiveTrigger

MODELS = ("in_focus", "out_of_focus", "ghost")
#: Shapes per generated reflection scene.
SHAPES = 4


def reflection_scene(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A generated reflection image in [0, 1]: overlapping bright rectangles and ellipses."""
    from scipy.ndimage import gaussian_filter

    h, w, c = shape
    rows, cols = np.mgrid[0:h, 0:w]
    scene = np.zeros((h, w), np.float32)
    for _ in range(SHAPES):
        top, left = rng.integers(0, h), rng.integers(0, w)
        height, width = rng.integers(h // 6, h // 2 + 1), rng.integers(w // 6, w // 2 + 1)
        if rng.random() < 0.5:
            inside = (abs(rows - top) <= height / 2) & (abs(cols - left) <= width / 2)
        else:
            inside = ((rows - top) / height) ** 2 + ((cols - left) / width) ** 2 <= 0.25
        scene = np.maximum(scene, inside * rng.uniform(0.5, 1.0))
    scene = gaussian_filter(scene, 0.7)
    return np.repeat((scene / max(float(scene.max()), 1e-6))[..., None], c, axis=-1)


def reflection_layer(
    scene: np.ndarray, model: str, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """``r (*) k`` of one physical model, scaled to strength ``alpha``."""
    from scipy.ndimage import gaussian_filter, shift

    if model == "in_focus":
        layer = scene
    elif model == "out_of_focus":
        layer = gaussian_filter(scene, (rng.uniform(1.0, 2.0),) * 2 + (0,))
    elif model == "ghost":
        offset = rng.integers(2, 5, size=2) * rng.choice([-1, 1], size=2)
        g = rng.uniform(0.5, 0.8)
        layer = g * scene + (1 - g) * shift(scene, (*offset, 0), order=0)
    else:
        raise ValueError(f"models: the physical models are {', '.join(MODELS)}, not {model!r}")
    return (alpha * layer).astype(np.float32)


def refool(
    ctx: AttackContext,
    *,
    target: int = 0,
    share: float = 0.8,
    alpha: float = 0.5,
    alpha_test: float | None = 0.8,
    models: tuple[str, ...] | list[str] = ("in_focus",),
    candidates: int = 8,
    clean_counterpart: bool = False,
) -> Backdoor:
    """One reflection trigger per physical model in ``models`` (the most salient of
    ``candidates`` generated scenes), each of strength ``alpha``, added to ``share`` of
    the target class's training images. ``alpha_test``
    (``None``: ``alpha``, as in the paper) is the strength test images get. The defaults
    are the harness's MNIST settings: one in-focus reflection, stronger at test (as SIG's
    signal), is what takes on a small MNIST net; the three physical models at one strength
    reached an ASR of 0.2-0.5 there (docs/ZOO.md)."""
    alpha_test = alpha if alpha_test is None else alpha_test
    if not 0.0 < alpha <= alpha_test <= 1.0:
        raise ValueError(f"need 0 < alpha <= alpha_test <= 1, not {alpha} and {alpha_test}")
    if not models:
        raise ValueError("models must name at least one physical model")
    rng = ctx.rng
    h, w, _ = ctx.input_shape
    target_of = single_target_map(ctx.num_classes, target)
    train: list[AdditiveTrigger] = []
    test: list[AdditiveTrigger] = []
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, not {candidates}")
    for model in models:
        scenes = [reflection_scene(ctx.input_shape, rng) for _ in range(candidates)]
        scene = max(scenes, key=lambda s: float(s.mean()))
        layer = reflection_layer(scene, str(model), 1.0, rng)
        support = (layer.max(axis=-1) > 0.05).astype(np.float32)
        for strength, out in ((alpha, train), (alpha_test, test)):
            out.append(AdditiveTrigger(support, strength * layer * support[..., None], target_of))
    plan = CleanLabelPlan(target, share, tuple(train))
    return clean_label_backdoor(
        "refool",
        tuple(test),
        plan,
        asr_floor=0.7,  # its ASR spreads 0.74-0.91 over seeds on MNIST (docs/ZOO.md)
        params={"models": list(models)},
        counterpart=clean_counterpart,
    )
