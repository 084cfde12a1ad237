"""A backdoor: one or more stamped triggers, each with a source -> target label map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TriggerSpec:
    """stamped = (1 - mask) * x + mask * pattern; ``target_of[y]`` is the label it forces."""

    mask: np.ndarray  # (H, W) in [0, 1]
    pattern: np.ndarray  # (H, W, C) in the input range
    target_of: np.ndarray  # (num_classes,) int; target_of[y] == y means "not attacked"

    def stamp(self, x: np.ndarray) -> np.ndarray:
        m = self.mask[None, :, :, None].astype(np.float32)
        return ((1.0 - m) * x + m * self.pattern[None]).astype(np.float32)

    @property
    def attacked_sources(self) -> np.ndarray:
        return np.flatnonzero(self.target_of != np.arange(len(self.target_of)))

    @property
    def size(self) -> int:
        """Trigger size in pixels (the k of the top-k mask IoU)."""
        return int(np.count_nonzero(self.mask > 0))


@dataclass(frozen=True)
class Backdoor:
    """What an attack recipe produces: triggers, poison rate and the floor its ASR must reach."""

    attack: str
    triggers: tuple[TriggerSpec, ...]
    poison_rate: float
    asr_floor: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> list[int]:
        found: set[int] = set()
        for trig in self.triggers:
            found.update(int(trig.target_of[s]) for s in trig.attacked_sources)
        return sorted(found)

    @property
    def all_to_all(self) -> bool:
        return any(len(set(t.target_of[t.attacked_sources].tolist())) > 1 for t in self.triggers)

    def poison_training(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """BadNets poisoning: stamp a ``poison_rate`` share of the set in place and relabel."""
        x, y = x.copy(), y.copy()
        share = self.poison_rate / len(self.triggers)
        for trig in self.triggers:
            eligible = np.flatnonzero(np.isin(y, trig.attacked_sources))
            chosen = rng.choice(eligible, size=int(round(share * len(x))), replace=False)
            x[chosen] = trig.stamp(x[chosen])
            y[chosen] = trig.target_of[y[chosen]]
        return x, y

    def poisoned_test(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every clean test image whose label a trigger attacks, stamped: (x', y_src, y_tgt)."""
        xs, srcs, tgts = [], [], []
        for trig in self.triggers:
            keep = np.isin(y, trig.attacked_sources)
            xs.append(trig.stamp(x[keep]))
            srcs.append(y[keep])
            tgts.append(trig.target_of[y[keep]])
        return np.concatenate(xs), np.concatenate(srcs), np.concatenate(tgts)
