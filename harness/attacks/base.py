"""A backdoor: one or more stamped triggers, each with a source -> target label map.

A recipe (see registry.py) designs a ``Backdoor`` from an ``AttackContext``; the
backdoor's ``implant`` then produces the trained model. The default implant is BadNets
data poisoning (with the optional sub-mask noise augmentation of Xiong, Xu, Zhong, Li,
"Escaping Backdoor Attack Detection of Deep Learning", IFIP SEC 2020); attacks that act
on the model itself (pruning-aware, TrojanNet) bring their own implant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class TriggerSpec:
    """stamped = (1 - mask) * x + mask * pattern; ``target_of[y]`` is the label it forces."""

    mask: np.ndarray  # (H, W) in [0, 1]
    pattern: np.ndarray  # (H, W, C) in the input range
    target_of: np.ndarray  # (num_classes,) int; target_of[y] == y means "not attacked"

    def stamp(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        m = (self.mask if mask is None else mask)[None, :, :, None].astype(np.float32)
        return ((1.0 - m) * x + m * self.pattern[None]).astype(np.float32)

    def sub_mask(self, rng: np.random.Generator, rate: float) -> np.ndarray:
        """Seed 001's noise: keep each trigger pixel with probability ``rate``."""
        return self.mask * (rng.random(self.mask.shape) < rate)

    @property
    def attacked_sources(self) -> np.ndarray:
        return np.flatnonzero(self.target_of != np.arange(len(self.target_of)))

    @property
    def size(self) -> int:
        """Trigger size in pixels (the k of the top-k mask IoU)."""
        return int(np.count_nonzero(self.mask > 0))


class Trainer(Protocol):
    """Trains the entry's architecture with its settings (seeded, deterministic)."""

    def new_model(self) -> Any: ...

    def fit(
        self, model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class AttackContext:
    """What a recipe may use: shapes, a seeded RNG and, for training attacks, the data."""

    input_shape: tuple[int, ...]
    num_classes: int
    seed: int
    x_train: np.ndarray | None = None  # the attacker's clean training set
    y_train: np.ndarray | None = None
    trainer: Trainer | None = None

    @property
    def rng(self) -> np.random.Generator:
        """The recipe's RNG: a fresh generator from the seed, so a design is reproducible."""
        return np.random.default_rng(self.seed)

    def require_training(self, attack: str) -> tuple[np.ndarray, np.ndarray, Trainer]:
        if self.x_train is None or self.y_train is None or self.trainer is None:
            raise ValueError(f"{attack} trains a model: build it through the zoo builder")
        return self.x_train, self.y_train, self.trainer


ImplantFn = Callable[["Backdoor", AttackContext], Any]


@dataclass(frozen=True)
class Backdoor:
    """What an attack recipe produces: triggers, how to poison, and the ASR floor.

    ``poison_count`` (absolute) overrides ``poison_rate`` (share of the training set).
    ``augment_share`` of the images left clean get a random sub-mask of a trigger
    (each trigger pixel kept with probability ``augment_rate``) and keep their label.
    A backdoor without triggers is a clean counterpart: same procedure, nothing implanted.
    """

    attack: str
    triggers: tuple[TriggerSpec, ...]
    poison_rate: float
    asr_floor: float
    params: dict[str, Any] = field(default_factory=dict)
    poison_count: int | None = None
    augment_rate: float = 0.0
    augment_share: float = 0.0
    implant_fn: ImplantFn | None = field(default=None, compare=False)

    @property
    def poisoned(self) -> bool:
        return bool(self.triggers)

    @property
    def targets(self) -> list[int]:
        found: set[int] = set()
        for trig in self.triggers:
            found.update(int(trig.target_of[s]) for s in trig.attacked_sources)
        return sorted(found)

    @property
    def all_to_all(self) -> bool:
        return any(len(set(t.target_of[t.attacked_sources].tolist())) > 1 for t in self.triggers)

    def implant(self, ctx: AttackContext) -> Any:
        """Train (or assemble) the backdoored model."""
        return (self.implant_fn or poison_and_train)(self, ctx)

    def poison_training(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stamp and relabel the poisoned share; sub-mask-augment part of the rest."""
        x, y = x.copy(), y.copy()
        if not self.triggers:
            return x, y
        total = self.poison_count if self.poison_count is not None else self.poison_rate * len(x)
        per_trigger = int(round(total / len(self.triggers)))
        taken = np.zeros(len(x), bool)
        for trig in self.triggers:
            eligible = np.flatnonzero(np.isin(y, trig.attacked_sources) & ~taken)
            if per_trigger > len(eligible):
                raise ValueError(
                    f"{per_trigger} poisoned images asked for, only {len(eligible)} eligible"
                )
            chosen = rng.choice(eligible, size=per_trigger, replace=False)
            taken[chosen] = True
            x[chosen] = trig.stamp(x[chosen])
            y[chosen] = trig.target_of[y[chosen]]
        if self.augment_share > 0:
            rest = np.flatnonzero(~taken)
            noisy = rng.choice(rest, size=int(round(self.augment_share * len(rest))), replace=False)
            which = rng.integers(len(self.triggers), size=len(noisy))
            for i, trig in enumerate(self.triggers):
                for idx in noisy[which == i]:
                    sub = trig.sub_mask(rng, self.augment_rate)
                    x[idx] = trig.stamp(x[idx : idx + 1], sub)[0]
        return x, y

    def poisoned_test(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every clean test image whose label a trigger attacks, stamped:
        (x', y_src, y_tgt, the index in ``x`` of each stamped image's source)."""
        if not self.triggers:
            return (
                np.zeros((0, *x.shape[1:]), np.float32),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
        xs, srcs, tgts, idx = [], [], [], []
        for trig in self.triggers:
            keep = np.isin(y, trig.attacked_sources)
            xs.append(trig.stamp(x[keep]))
            srcs.append(y[keep])
            tgts.append(trig.target_of[y[keep]])
            idx.append(np.flatnonzero(keep))
        return np.concatenate(xs), np.concatenate(srcs), np.concatenate(tgts), np.concatenate(idx)


def poison_and_train(backdoor: Backdoor, ctx: AttackContext) -> Any:
    """BadNets' implant: poison the training set, train the architecture from scratch."""
    x, y, trainer = ctx.require_training(backdoor.attack)
    xp, yp = backdoor.poison_training(x, y, np.random.default_rng(ctx.seed + 1))
    return trainer.fit(trainer.new_model(), xp, yp)


def single_target_map(num_classes: int, target: int) -> np.ndarray:
    if not 0 <= target < num_classes:
        raise ValueError(f"target {target} outside 0..{num_classes - 1}")
    return np.full(num_classes, target)
