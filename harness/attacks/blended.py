"""Blended trigger (Chen, Liu, Li, Lu, Song 2017, "Targeted backdoor attacks on deep learning
systems using data poisoning"): a random full-image pattern mixed into the input with a
small weight alpha (0.1-0.2), so no region of the image stands out; every label -> target.
"""

from __future__ import annotations

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map


def blended(
    ctx: AttackContext,
    *,
    poison_rate: float = 0.1,
    alpha: float = 0.15,
    target: int = 0,
) -> Backdoor:
    """x' = (1 - alpha) x + alpha * pattern, with a uniform random pattern drawn from the seed."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    h, w, c = ctx.input_shape
    pattern = ctx.rng.random((h, w, c)).astype(np.float32)
    mask = np.full((h, w), alpha, np.float32)
    trigger = TriggerSpec(mask, pattern, single_target_map(ctx.num_classes, target))
    return Backdoor("blended", (trigger,), poison_rate=poison_rate, asr_floor=0.9)
