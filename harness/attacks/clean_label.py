"""Clean-label poisoning: the trigger goes on training images of the target class, and
every label stays true, so inspecting the training labels finds nothing.

Shared by SIG, the label-consistent attack and the reflection backdoor. A share of the
target class's training images get a training trigger (which may be fainter than the
trigger the model is tested with: SIG's and the label-consistent attack's test trigger is
stronger); the label-consistent attack first makes those images hard to classify
(``prepare``), so the model leans on the trigger to get them right.

The clean counterpart (``clean_counterpart = true``) stamps as many images with the same
training triggers, drawn from every class alike, labels true: the model sees the trigger
as often but on every label, learns it says nothing, and stays clean. (Stamping the target
class, as the attack does, would implant the backdoor: in a clean-label attack the stamped
images *are* the attack.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, TriggerSpec

#: ``prepare(x, y, ctx)``: the attack's change to the chosen images before stamping.
Prepare = Callable[[np.ndarray, np.ndarray, AttackContext], np.ndarray]


@dataclass(frozen=True)
class CleanLabelPlan:
    """Which images get which training trigger; labels are never changed."""

    target: int
    share: float  # of the target class's training images
    train_triggers: tuple[TriggerSpec, ...]
    prepare: Prepare | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"share must be in (0, 1], not {self.share}")

    def poison(
        self, ctx: AttackContext, rng: np.random.Generator, counterpart: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The training set with ``share`` of the target class stamped (or, for the
        counterpart, as many images of every class), labels as they were."""
        x, y, _ = ctx.require_training("a clean-label attack")
        x = x.copy()
        count = int(round(self.share * np.count_nonzero(y == self.target)))
        pool = np.arange(len(y)) if counterpart else np.flatnonzero(y == self.target)
        chosen = rng.choice(pool, size=min(count, len(pool)), replace=False)
        which = rng.integers(len(self.train_triggers), size=len(chosen))
        images = x[chosen]
        if self.prepare is not None and not counterpart:
            images = self.prepare(images, y[chosen], ctx)
        for i, trig in enumerate(self.train_triggers):
            images[which == i] = trig.stamp(images[which == i])
        x[chosen] = images
        return x, y.copy()


def clean_label_backdoor(
    attack: str,
    test_triggers: tuple[TriggerSpec, ...],
    plan: CleanLabelPlan,
    *,
    asr_floor: float,
    params: dict[str, Any] | None = None,
    counterpart: bool = False,
) -> Backdoor:
    """The backdoor (or, with ``counterpart``, its clean counterpart) of a clean-label plan."""

    def implant(_: Backdoor, ctx: AttackContext) -> Any:
        x, y = plan.poison(ctx, np.random.default_rng(ctx.seed + 1), counterpart)
        trainer = ctx.require_training(attack)[2]
        return trainer.fit(trainer.new_model(), x, y)

    details = dict(params or {})
    if counterpart:
        details |= {
            "counterpart_of": attack,
            "shown_targets": [plan.target],
            "shown_trigger_sizes": [t.size for t in test_triggers],
        }
    return Backdoor(
        attack,
        () if counterpart else test_triggers,
        poison_rate=0.0,
        asr_floor=asr_floor,
        params=details,
        implant_fn=implant,
    )
