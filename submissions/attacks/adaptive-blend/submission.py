"""Adaptive-Blend as an attack-track hand-in (Qi, Xie, Li, Mahloujifar and Mittal,
"Revisiting the Assumption of Latent Separability for Backdoor Defenses", ICLR 2023).

A blend trigger cut into a grid of pieces: each poisoned image (label -> target) and each
conservatism image (label kept) gets a random half of the pieces at a weak blend, so no
piece alone is the trigger and the poisoned images' latent representation stays with the
clean ones; test images get the whole pattern, a little stronger. The paper blends a
picture; this hand-in generates a smooth texture (a coarse random grid, upsampled), with
the zoo recipe's own pattern and pieces (``harness.attacks.adaptive_blend``)."""

from __future__ import annotations

import numpy as np

from harness.api import PoisonedSet, Trigger


class AdaptiveBlend:
    def __init__(
        self,
        target: int = 0,
        poison_rate: float = 0.01,
        cover_rate: float = 0.01,
        alpha_train: float = 0.15,
        alpha_test: float = 0.2,
        pieces: int = 16,
        piece_rate: float = 0.5,
    ) -> None:
        self.target, self.poison_rate, self.cover_rate = target, poison_rate, cover_rate
        self.alpha_train, self.alpha_test = alpha_train, alpha_test
        self.pieces, self.piece_rate = pieces, piece_rate

    def poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonedSet:
        from harness.attacks.adaptive_blend import piece_masks, smooth_pattern  # the recipe's

        n, h, w, _ = x.shape
        pattern = smooth_pattern(x.shape[1:], rng)
        grid = piece_masks(x.shape[1:], self.pieces)
        chosen = rng.choice(n, int((self.poison_rate + self.cover_rate) * n), replace=False)
        kept = max(1, int(round(self.piece_rate * self.pieces)))
        for i in chosen:
            part = grid[rng.choice(self.pieces, kept, replace=False)].sum(0) * self.alpha_train
            x[i] = Trigger(part.astype(np.float32), pattern).stamp(x[i : i + 1])[0]
        y[chosen[: int(self.poison_rate * n)]] = self.target
        trigger = Trigger(np.full((h, w), self.alpha_test, np.float32), pattern)
        return PoisonedSet(x, y, [trigger], [self.target])
