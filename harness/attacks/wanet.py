"""WaNet (Nguyen and Tran, "WaNet - Imperceptible Warping-based Backdoor Attack", ICLR
2021): the trigger is a smooth warp of the whole image, not a pattern stamped on it.

The field: a random ``k`` x ``k`` grid of 2-D offsets in [-1, 1], normalised to a mean
absolute value of 1, upsampled (bicubic) to the image and scaled by ``s``; in the
paper's normalised coordinates a pixel moves by ``s * field / H``, i.e. about
``s * field / 2`` pixels, and the sampling grid is clamped to the image. The trigger is
that field, applied by the harness (``WarpTrigger`` in ``harness.attacks.kinds``).

Training (the paper's Algorithm 1, "noise mode"): ``poison_rate`` of the training images
are warped and relabelled to ``target``; ``cross_ratio`` times as many other images are
warped by the field plus a random per-pixel offset of up to half a pixel (the paper's
uniform (-1, 1) / H) and keep their labels, so the model learns the exact field and not
"any warp". The paper's MNIST settings are the defaults: k = 4, s = 0.5, rate 0.1, cross
ratio 2. The clean counterpart (``clean_counterpart = true``) warps the same images the
same way and keeps every label.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, single_target_map
from harness.attacks.kinds import WarpTrigger, warp, warp_support


def warp_field(shape: tuple[int, ...], k: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """The (H, W, 2) field in pixels (rows, cols) of WaNet's warping grid."""
    from scipy.ndimage import zoom

    h, w, _ = shape
    grid = rng.uniform(-1.0, 1.0, (k, k, 2))
    grid /= np.mean(np.abs(grid))
    up = zoom(grid, (h / k, w / k, 1), order=3, mode="nearest")[:h, :w]
    # normalised coordinates span the image's H - 1 (rows) and W - 1 (cols) pixel steps
    return (s * up / h * np.array([(h - 1) / 2, (w - 1) / 2])).astype(np.float32)


def _poison(
    trigger: WarpTrigger,
    rates: tuple[float, float],
    ctx: AttackContext,
    relabel: bool,
) -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = ctx.require_training("wanet")
    x, y = x.copy(), y.copy()
    rng = np.random.default_rng(ctx.seed + 1)
    poison_rate, cross_ratio = rates
    n_poison = int(round(poison_rate * len(x)))
    n_cross = int(round(cross_ratio * n_poison))
    chosen = rng.choice(len(x), size=min(len(x), n_poison + n_cross), replace=False)
    poisoned, noisy = chosen[:n_poison], chosen[n_poison:]
    x[poisoned] = trigger.stamp(x[poisoned])
    if relabel:
        y[poisoned] = trigger.target_of[y[poisoned]]
    h, w = trigger.flow.shape[:2]
    half_px = np.array([(h - 1) / (2 * h), (w - 1) / (2 * w)])  # (-1, 1) / H in pixels
    for idx in noisy:  # a fresh random offset per image
        jitter = (rng.uniform(-1.0, 1.0, (h, w, 2)) * half_px).astype(np.float32)
        x[idx] = warp(x[idx : idx + 1], trigger.flow + jitter)[0]
    return x, y


def wanet(
    ctx: AttackContext,
    *,
    target: int = 0,
    k: int = 4,
    s: float = 0.5,
    poison_rate: float = 0.1,
    cross_ratio: float = 2.0,
    clean_counterpart: bool = False,
) -> Backdoor:
    """Warp ``poison_rate`` of the training set (label -> ``target``) and ``cross_ratio``
    times as many with a jittered warp (label kept); see the module's docstring."""
    h, w, _ = ctx.input_shape
    if not 2 <= k <= min(h, w):
        raise ValueError(f"k must be in 2..{min(h, w)}, not {k}")
    if not s > 0.0 or not 0.0 < poison_rate < 1.0 or cross_ratio < 0:
        raise ValueError("need s > 0, 0 < poison_rate < 1 and cross_ratio >= 0")
    if poison_rate * (1 + cross_ratio) > 1.0:
        raise ValueError("poison_rate * (1 + cross_ratio) is more than the training set")
    flow = warp_field(ctx.input_shape, k, s, ctx.rng)
    trigger = WarpTrigger(
        warp_support(flow),
        np.zeros(ctx.input_shape, np.float32),
        single_target_map(ctx.num_classes, target),
        flow=flow,
    )

    def implant(_: Backdoor, c: AttackContext) -> Any:
        x, y = _poison(trigger, (poison_rate, cross_ratio), c, relabel=not clean_counterpart)
        trainer = c.require_training("wanet")[2]
        return trainer.fit(trainer.new_model(), x, y)

    params: dict[str, Any] = {"max_shift_px": round(float(np.abs(flow).max()), 3)}
    if clean_counterpart:
        params |= {
            "counterpart_of": "wanet",
            "shown_targets": [target],
            "shown_trigger_sizes": [trigger.size],
        }
    return Backdoor(
        "wanet",
        () if clean_counterpart else (trigger,),
        poison_rate=poison_rate,
        asr_floor=0.9,
        params=params,
        implant_fn=implant,
    )
