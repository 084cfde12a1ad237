"""Clean counterparts of the data-poisoning attacks: the recipe run with its label change
left out.

A counterpart (``clean_counterpart = true`` on any recipe that does not bring its own)
designs the same triggers from the same seed, stamps them on the same training images the
attack would poison (and sub-mask-augments the same share of the rest), and trains on
those images with their **true** labels. It has seen every trigger the backdoored model
saw and learned to ignore it, so it is clean: a stamped input keeps its label.

Why the zoo has them: a backdoored model's training set differs from a clean one's in two
ways, the stamped inputs and the changed labels. A counterpart shares the first, so what
still tells a backdoored model from its counterparts is the backdoor itself and not the
data pipeline that put it there (docs/ZOO.md, "Leakage audit"). The model-level attacks
(pruning-aware, TrojanNet) bring counterparts of their own, with the same shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from harness.attacks.base import AttackContext, Backdoor


def stamped_training_set(
    attack: Backdoor, x: np.ndarray, y: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The attack's training images (the same RNG picks the same ones), true labels."""
    stamped, _ = attack.poison_training(x, y, np.random.default_rng(seed + 1))
    return stamped, y.copy()


def clean_counterpart(attack: Backdoor) -> Backdoor:
    """The clean counterpart of a data-poisoning backdoor: no trigger implanted, every
    trigger seen in training. Its details record the triggers it was shown."""
    if attack.implant_fn is not None:
        raise ValueError(f"{attack.attack} acts on the model itself: it needs its own counterpart")

    def implant(_: Backdoor, ctx: AttackContext) -> Any:
        x, y, trainer = ctx.require_training(attack.attack)
        xs, ys = stamped_training_set(attack, x, y, ctx.seed)
        return trainer.fit(trainer.new_model(), xs, ys)

    shown = {
        "counterpart_of": attack.attack,
        "shown_targets": attack.targets,
        "shown_trigger_sizes": [t.size for t in attack.triggers],
    }
    return replace(attack, triggers=(), params={**attack.params, **shown}, implant_fn=implant)
