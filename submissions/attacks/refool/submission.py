"""The reflection backdoor, Refool, as an attack-track hand-in (Liu, Ma, Bailey and Lu,
"Reflection Backdoor: A Natural Backdoor Attack on Deep Neural Networks", ECCV 2020): a
clean-label attack whose trigger is a reflection, as a photo taken through glass picks one
up, added to a share of the target class's training images; no label changes.

The paper draws reflections from PascalVOC and keeps the ones that work best on surrogate
models. Nothing is downloaded here: the hand-in draws ``candidates`` scenes of bright
rectangles and ellipses (window frames, lamps), lightly blurred (the zoo recipe's
``harness.attacks.refool.reflection_scene``), and keeps the most
salient (the largest mean intensity) of those that keep the track's trigger budget at
``alpha_test`` (``rms_budget``: how far the test reflection moves an image, RMS over its
pixels, measured on training images it attacks). The reflection is added in focus (the
paper's first physical model) and clipped to the input range: an ``AdditiveTrigger``."""

from __future__ import annotations

import numpy as np

from harness.api import AdditiveTrigger, PoisonedSet


class Refool:
    def __init__(
        self,
        target: int = 0,
        share: float = 0.8,
        alpha: float = 0.5,
        alpha_test: float = 0.8,
        candidates: int = 32,
        rms_budget: float = 0.28,
    ) -> None:
        self.target, self.share, self.candidates = target, share, candidates
        self.alpha, self.alpha_test, self.rms_budget = alpha, alpha_test, rms_budget

    def moves(self, layer: np.ndarray, x: np.ndarray) -> float:
        """RMS over pixels of what the test reflection changes, mean over ``x``."""
        stamped = AdditiveTrigger(np.ones(layer.shape[:2], np.float32), self.alpha_test * layer)
        moved = (stamped.stamp(x) - x).reshape(len(x), -1)
        return float(np.sqrt(np.mean(moved**2, axis=1)).mean())

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        from harness.attacks.refool import reflection_scene  # the zoo recipe's scenes

        c = x.shape[-1]
        probe = x[np.flatnonzero(y != self.target)[:500]]
        layers = []
        for _ in range(self.candidates):
            s = reflection_scene(x.shape[1:], rng)[..., 0]
            layers.append(np.repeat((s * (s > 0.05))[..., None], c, axis=-1).astype(np.float32))
        within = [lay for lay in layers if self.moves(lay, probe) <= self.rms_budget]
        layer = max(within or [min(layers, key=np.mean)], key=np.mean)
        support = (layer.max(axis=-1) > 0).astype(np.float32)
        pool = np.flatnonzero(y == self.target)
        chosen = rng.choice(pool, int(self.share * len(pool)), replace=False)
        x[chosen] = AdditiveTrigger(support, self.alpha * layer).stamp(x[chosen])
        trigger = AdditiveTrigger(support, self.alpha_test * layer)
        return PoisonedSet(x, y, [trigger], [self.target])
