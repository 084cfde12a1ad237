"""The label-consistent attack (Turner, Tsipras and Madry, "Label-Consistent Backdoor
Attacks", 2019): poison only images of the target class and keep their labels, after
making them hard to classify, so the model has to use the trigger to get them right.

1. The attacker trains a clean model of the same recipe on its training set.
2. A share of the target class's training images are perturbed adversarially against it:
   projected gradient descent (Madry et al.; ``harness.toolkit.adversarial``) within an
   L-infinity ball of ``epsilon``, ``pgd_steps`` steps, raising the loss of the true label.
3. The paper's four-corner trigger (BadNets' 3 x 3 checkerboard in every corner, so it
   survives flips) is stamped on them at reduced ``amplitude`` (section 4.3, "reducing
   visibility"), labels unchanged (clean-label, ``harness.attacks.clean_label``).
4. The model is trained from scratch on that set; it is tested with the trigger at full
   amplitude, as in the paper.
"""

from __future__ import annotations

import numpy as np

from harness.attacks.badnets import CORNERS, patch_trigger
from harness.attacks.base import AttackContext, Backdoor, TriggerSpec, single_target_map
from harness.attacks.clean_label import CleanLabelPlan, clean_label_backdoor
from harness.toolkit.adversarial import pgd


def corner_trigger(shape: tuple[int, ...], size: int, target_of: np.ndarray) -> TriggerSpec:
    """A ``size`` x ``size`` checkerboard one pixel in from each of the four corners."""
    corners = [patch_trigger(shape, size, c, 1, "checker", target_of) for c in CORNERS]
    mask = np.sum([t.mask for t in corners], axis=0)
    pattern = np.sum([t.pattern for t in corners], axis=0)
    return TriggerSpec(mask, pattern, target_of)


def label_consistent(
    ctx: AttackContext,
    *,
    target: int = 0,
    share: float = 0.8,
    epsilon: float = 0.3,
    pgd_steps: int = 10,
    amplitude: float = 0.5,
    size: int = 3,
    clean_counterpart: bool = False,
) -> Backdoor:
    """See the module's docstring; ``share`` is of the target class's training images."""
    if not 0.0 <= epsilon <= 1.0 or pgd_steps < 1 or not 0.0 < amplitude <= 1.0:
        raise ValueError("need 0 <= epsilon <= 1, pgd_steps >= 1 and 0 < amplitude <= 1")
    target_of = single_target_map(ctx.num_classes, target)
    full = corner_trigger(ctx.input_shape, size, target_of)
    faint = TriggerSpec(full.mask * amplitude, full.pattern, target_of)

    def harden(x: np.ndarray, y: np.ndarray, c: AttackContext) -> np.ndarray:
        xs, ys, trainer = c.require_training("label_consistent")
        if epsilon == 0.0:
            return x
        return pgd(trainer.fit(trainer.new_model(), xs, ys), x, y, epsilon, pgd_steps)

    plan = CleanLabelPlan(target, share, (faint,), prepare=harden)
    return clean_label_backdoor(
        "label_consistent", (full,), plan, asr_floor=0.8, counterpart=clean_counterpart
    )
