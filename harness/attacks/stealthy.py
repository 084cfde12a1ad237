"""The two attacks built to escape Neural Cleanse and DeepInspect (Xiong, Xu,
Zhong, Li, "Escaping Backdoor Attack Detection of Deep Learning", IFIP SEC 2020).

Both poison ``poison_count`` images with a trigger (Eq. 1, label -> target) and add
"noise" to a share of the other images: the same trigger under a random sub-mask, each
trigger pixel kept with probability ``sampling_rate`` (Eq. 2), label unchanged. The noise
teaches the model the *whole* trigger, so Neural Cleanse's reconstruction of the target
is not abnormally small. The paper's MNIST settings are the defaults: 6000 poisoned
images, the whole remaining training set augmented, sampling rate 0.6, target 2, z = 36.

- ``reconstructed_trigger`` (Algorithm 1): train a clean model, reverse-engineer the
  target's trigger on it with Neural Cleanse (``harness.toolkit.reverse``), poison with that trigger.
- ``random_trigger`` (Algorithm 2): a mask of z random pixels and a uniform random pattern.
"""

from __future__ import annotations

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map


def _check(sampling_rate: float, augment_share: float, poison_count: int) -> None:
    if not 0.0 < sampling_rate < 1.0:
        raise ValueError(f"sampling_rate must be in (0, 1), not {sampling_rate}")
    if not 0.0 <= augment_share <= 1.0:
        raise ValueError(f"augment_share must be in [0, 1], not {augment_share}")
    if poison_count < 1:
        raise ValueError(f"poison_count must be positive, not {poison_count}")


def random_trigger(
    ctx: AttackContext,
    *,
    poison_count: int = 6000,
    mask_size: int = 36,
    target: int = 2,
    sampling_rate: float = 0.6,
    augment_share: float = 1.0,
) -> Backdoor:
    """Algorithm 2: z = ``mask_size`` random pixels, each with a random value in the range."""
    _check(sampling_rate, augment_share, poison_count)
    h, w, c = ctx.input_shape
    if not 1 <= mask_size <= h * w:
        raise ValueError(f"mask_size must be in 1..{h * w}, not {mask_size}")
    rng = ctx.rng
    mask = np.zeros(h * w, np.float32)
    mask[rng.choice(h * w, mask_size, replace=False)] = 1.0
    pattern = rng.integers(0, 256, (h, w, c)).astype(np.float32) / 255.0
    trigger = TriggerSpec(mask.reshape(h, w), pattern, single_target_map(ctx.num_classes, target))
    return Backdoor(
        "random_trigger",
        (trigger,),
        poison_rate=0.0,
        asr_floor=0.9,
        poison_count=poison_count,
        augment_rate=sampling_rate,
        augment_share=augment_share,
    )


def reconstructed_trigger(
    ctx: AttackContext,
    *,
    poison_count: int = 6000,
    target: int = 2,
    sampling_rate: float = 0.6,
    augment_share: float = 1.0,
    mask_threshold: float = 0.1,
    nc_steps: int = 600,
    nc_images: int = 2000,
) -> Backdoor:
    """Algorithm 1: Neural Cleanse's trigger for ``target`` on a clean model of the same
    architecture, trained by the attacker on the same data. Mask values below
    ``mask_threshold`` are zeroed so the trigger has a definite support."""
    from harness.toolkit.reverse import ReverseSettings, reverse_engineer

    _check(sampling_rate, augment_share, poison_count)
    x, y, trainer = ctx.require_training("reconstructed_trigger")
    target_of = single_target_map(ctx.num_classes, target)
    clean = trainer.fit(trainer.new_model(), x, y)
    rng = ctx.rng
    probe = x[rng.choice(np.flatnonzero(y != target), min(nc_images, len(x)), replace=False)]
    found = reverse_engineer(
        clean, probe, [target], ReverseSettings(steps=nc_steps, seed=ctx.seed)
    )[0]
    mask = np.where(found.mask >= mask_threshold, found.mask, 0.0).astype(np.float32)
    if not mask.any():
        raise ValueError("Neural Cleanse found no trigger: raise nc_steps or lower mask_threshold")
    return Backdoor(
        "reconstructed_trigger",
        (TriggerSpec(mask, found.pattern.astype(np.float32), target_of),),
        poison_rate=0.0,
        asr_floor=0.9,
        params={"nc_l1": round(found.l1, 2), "nc_asr": round(found.asr, 3)},
        poison_count=poison_count,
        augment_rate=sampling_rate,
        augment_share=augment_share,
    )
