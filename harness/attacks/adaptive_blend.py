"""Adaptive-Blend (Qi, Xie, Li, Mahloujifar and Mittal, "Revisiting the Assumption of Latent
Separability for Backdoor Defenses", ICLR 2023): a blend trigger planted so that poisoned
inputs stay close to clean ones in the model's latent space, which the defenses built on
latent separability (activation clustering, spectral signatures, STRIP-like filters)
assume they are not.

Three parts of the paper's recipe:

- **partitioned trigger**: the pattern is cut into ``pieces`` (a square grid); each
  training image gets a random ``piece_rate`` of them, so no single piece is the trigger
  and the model learns the pattern as a whole;
- **low poisoning rate** (``poison_rate``) and a weak training blend (``alpha_train``);
  the test trigger is the whole pattern, a little stronger (``alpha_test``);
- **conservatism samples** (``cover_rate``): as many again carry a partial trigger and
  keep their true labels, which regularises the backdoor and keeps its latent
  representation from separating.

The pattern is generated, not downloaded (the paper blends a picture): smooth random
texture from the seed, a low-resolution random grid upsampled to the image. The clean
counterpart (``clean_counterpart = true``) stamps the same partial triggers on the same
images and keeps every label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map


def smooth_pattern(shape: tuple[int, ...], rng: np.random.Generator, cells: int = 7) -> np.ndarray:
    """A smooth texture in [0, 1]: a ``cells`` x ``cells`` random grid, upsampled."""
    from scipy.ndimage import zoom

    h, w, c = shape
    coarse = rng.random((cells, cells, c))
    up = zoom(coarse, (h / cells, w / cells, 1), order=3, mode="nearest")[:h, :w]
    up -= up.min()
    return (up / max(float(up.max()), 1e-6)).astype(np.float32)


def piece_masks(shape: tuple[int, ...], pieces: int) -> np.ndarray:
    """(pieces, H, W) 0/1 masks of a square grid of ``pieces`` cells covering the image."""
    side = int(round(np.sqrt(pieces)))
    if side * side != pieces:
        raise ValueError(f"pieces must be a square number, not {pieces}")
    h, w = shape[:2]
    rows = np.minimum(np.arange(h) * side // h, side - 1)
    cols = np.minimum(np.arange(w) * side // w, side - 1)
    cell = rows[:, None] * side + cols[None, :]
    return (cell[None] == np.arange(pieces)[:, None, None]).astype(np.float32)


def adaptive_blend(
    ctx: AttackContext,
    *,
    target: int = 0,
    poison_rate: float = 0.003,
    cover_rate: float = 0.003,
    alphas: tuple[float, float] = (0.15, 0.2),
    pieces: int = 16,
    piece_rate: float = 0.5,
    clean_counterpart: bool = False,
) -> Backdoor:
    """See the module's docstring; the defaults are the paper's CIFAR-10 settings.

    ``alphas`` is (training blend, test blend): the partial triggers of the poisoned and
    conservatism samples are blended at the first, the whole test trigger at the second.
    """
    alpha_train, alpha_test = (float(a) for a in alphas)
    if not 0.0 < alpha_train <= alpha_test < 1.0:
        raise ValueError("need 0 < alpha_train <= alpha_test < 1")
    if not 0.0 < poison_rate < 1.0 or not 0.0 <= cover_rate < 1.0 or not 0.0 < piece_rate <= 1.0:
        raise ValueError("need 0 < poison_rate < 1, 0 <= cover_rate < 1, 0 < piece_rate <= 1")
    h, w, _ = ctx.input_shape
    grid = piece_masks(ctx.input_shape, pieces)
    pattern = smooth_pattern(ctx.input_shape, ctx.rng)
    target_of = single_target_map(ctx.num_classes, target)
    trigger = TriggerSpec(np.full((h, w), alpha_test, np.float32), pattern, target_of)

    def implant(_: Backdoor, c: AttackContext) -> Any:
        x, y, trainer = c.require_training("adaptive_blend")
        x, y = x.copy(), y.copy()
        rng = np.random.default_rng(c.seed + 1)
        n_poison, n_cover = int(round(poison_rate * len(x))), int(round(cover_rate * len(x)))
        chosen = rng.choice(len(x), size=min(len(x), n_poison + n_cover), replace=False)
        kept = max(1, int(round(piece_rate * pieces)))
        for idx in chosen:
            part = grid[rng.choice(pieces, size=kept, replace=False)].sum(0) * alpha_train
            x[idx] = TriggerSpec(part, pattern, target_of).stamp(x[idx : idx + 1])[0]
        if not clean_counterpart:
            y[chosen[:n_poison]] = target
        return trainer.fit(trainer.new_model(), x, y)

    params: dict[str, Any] = {}
    if clean_counterpart:
        params = {
            "counterpart_of": "adaptive_blend",
            "shown_targets": [target],
            "shown_trigger_sizes": [trigger.size],
        }
    return Backdoor(
        "adaptive_blend",
        () if clean_counterpart else (trigger,),
        poison_rate=poison_rate,
        asr_floor=0.8,
        params=params,
        implant_fn=implant,
    )
