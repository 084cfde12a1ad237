"""The inputs a repair or filter task is scored on, drawn so that they tell nothing.

A repairer or filter receives test images to label or flag. Two things about them must not
depend on whether the model is backdoored:

- **their number.** A clean model has no poisoned test set, so "every clean image plus
  every poisoned one" would hand clean models a shorter array; the count also differs
  between single-target, multi-target and all-to-all attacks. Here every model of a data
  set gets the same count: half the test set as clean images plus a quarter of it as a
  second part, which is poisoned images for a model with a trigger and further clean
  images for a model without one.
- **pairs.** A poisoned image is a clean test image with the trigger stamped on it. If both
  were in one task, subtracting near-duplicates would reveal the trigger exactly. Here the
  clean part and the sources of the poisoned part are disjoint halves of the test set, and
  no source image is stamped twice (multi-trigger models stamp each image once per
  trigger).

Which half is which, and the shuffle, come from the task's seed. Only the clean part and
the poisoned part are scored; the clean filler of a trigger-less model is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.zoo.store import TestSets


@dataclass(frozen=True)
class EvalSet:
    """One task's shuffled inputs and how to map the answers back."""

    x: np.ndarray  # what the submission receives
    order: np.ndarray  # x[i] is row order[i] of [clean part; second part]
    clean_rows: np.ndarray  # rows of the test set in the clean part
    poisoned_rows: np.ndarray  # rows of the poisoned test set in the second part (or empty)

    def split(self, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-input answers in submission order -> (clean part's, poisoned part's)."""
        restored = np.empty_like(answers)
        restored[self.order] = answers
        n = len(self.clean_rows)
        return restored[:n], restored[n : n + len(self.poisoned_rows)]

    def scored(self, sets: TestSets) -> TestSets:
        """The test sets restricted to what this task scores."""
        return TestSets(
            sets.x[self.clean_rows],
            sets.y[self.clean_rows],
            sets.x_poisoned[self.poisoned_rows],
            sets.y_src[self.poisoned_rows],
            sets.y_tgt[self.poisoned_rows],
        )


def second_part_size(n_test: int) -> int:
    return n_test // 4


def _poisoned_rows(
    sets: TestSets, sources: np.ndarray, m: int, rng: np.random.Generator
) -> np.ndarray:
    """``m`` rows of the poisoned set whose source images are in ``sources``, at most one
    row per source; rows without a recorded source (imported sets) are drawn as they are."""
    rows = rng.permutation(len(sets.y_src))
    if sets.src_index is not None:
        allowed = np.isin(sets.src_index[rows], sources)
        rows = rows[allowed]
        _, first = np.unique(sets.src_index[rows], return_index=True)
        rows = rows[np.sort(first)]
    if len(rows) >= m:
        return rows[:m]
    return rng.choice(rows, m, replace=True) if len(rows) else rows


def draw_eval_set(sets: TestSets, seed: int) -> EvalSet:
    """Half the test set as clean images plus a quarter as the second part, shuffled."""
    rng = np.random.default_rng(seed)
    n = len(sets.y)
    perm = rng.permutation(n)
    clean_rows, others = np.sort(perm[: n // 2]), perm[n // 2 :]
    m = second_part_size(n)
    poisoned_rows = np.zeros(0, np.int64)
    if len(sets.y_src):
        poisoned_rows = _poisoned_rows(sets, others, m, rng)
    if len(poisoned_rows) == m and m > 0:
        second = sets.x_poisoned[poisoned_rows]
    else:  # no trigger: more clean images, same count
        poisoned_rows = np.zeros(0, np.int64)
        second = sets.x[others[:m]]
    pool = np.concatenate([sets.x[clean_rows], second]).astype(np.float32)
    order = rng.permutation(len(pool))
    return EvalSet(pool[order], order, clean_rows, poisoned_rows)
