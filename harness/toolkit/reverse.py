"""Trigger reverse-engineering (Neural Cleanse: Wang et al., S&P 2019), batched over labels.

For each candidate target label k, find the smallest mask m_k and a pattern p_k such that
stamping clean images, x' = (1 - m_k) * x + m_k * p_k, sends them to k:

    minimise  CE(f(x'), k) + cost_k * |m_k|_1

with m = tanh(a)/2 + 1/2 and p = lo + (hi - lo) (tanh(b)/2 + 1/2) so both stay in range.
Each label's cost is tuned as in Neural Cleanse: once the stamped batch reaches
``asr_threshold`` for ``patience`` checks the cost grows by ``cost_up``; when it falls
short it shrinks by ``cost_up ** 1.5``. The answer for a label is the smallest-L1 mask
seen while the attack held. With ``early_stop = k`` the optimisation ends once every label
has a mask that holds and no label's best mask shrank by ``min_improvement`` (relative)
for k checks in a row, as Neural Cleanse's own implementation stops early. All labels are optimised together in one graph (one forward
pass over K x B stamped images per step), which is what makes it affordable on a CPU.

Shared by the reconstructed-trigger attack (Xiong et al. 2020, Algorithm 1) and by defenses; a
submission can ``from harness.toolkit.reverse import reverse_engineer``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReversedTrigger:
    target: int
    mask: np.ndarray  # (H, W) in [0, 1]
    pattern: np.ndarray  # (H, W, C) in the input range
    l1: float  # |mask|_1 of the answer
    asr: float  # share of the check batch sent to the target by the answer
    found: bool  # False when no mask ever reached the threshold (mask is then the last one)


@dataclass(frozen=True)
class ReverseSettings:
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 0.1
    init_cost: float = 1e-3
    asr_threshold: float = 0.99
    check_every: int = 10
    patience: int = 5
    cost_up: float = 1.5
    seed: int = 0
    early_stop: int = 0  # checks without improvement before stopping (0: run every step)
    min_improvement: float = 0.01  # a best mask must shrink by this share to count


def reverse_engineer(
    model: Any,
    x_clean: np.ndarray,
    targets: Sequence[int],
    settings: ReverseSettings | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
    on_check: Callable[[int], None] | None = None,
) -> list[ReversedTrigger]:
    """Reverse-engineer one trigger per label in ``targets`` (see the module docstring)."""
    import tensorflow as tf

    s = settings or ReverseSettings()
    k = len(targets)
    h, w, c = x_clean.shape[1:]
    lo, hi = input_range
    rng = np.random.default_rng(s.seed)
    init = np.random.default_rng(s.seed + 1)
    mask_raw = tf.Variable(init.normal(0, 0.1, (k, h, w)).astype(np.float32) - 2.0)
    pattern_raw = tf.Variable(init.normal(0, 0.1, (k, h, w, c)).astype(np.float32))
    costs = tf.Variable(np.full(k, s.init_cost, np.float32))
    labels = tf.constant(np.repeat(np.asarray(targets, np.int64), s.batch_size))
    opt = tf.keras.optimizers.Adam(s.learning_rate, beta_1=0.5, beta_2=0.9)

    def current() -> tuple[Any, Any]:
        mask = tf.tanh(mask_raw) / 2.0 + 0.5
        pattern = lo + (hi - lo) * (tf.tanh(pattern_raw) / 2.0 + 0.5)
        return mask, pattern

    def stamped(x: Any) -> tuple[Any, Any]:
        mask, pattern = current()
        m = mask[:, None, :, :, None]
        xs = (1.0 - m) * x[None] + m * pattern[:, None]
        return tf.reshape(xs, (-1, h, w, c)), mask

    @tf.function(reduce_retracing=True)
    def step(x: Any) -> tuple[Any, Any, Any]:
        with tf.GradientTape() as tape:
            xs, mask = stamped(x)
            probs = model(xs, training=False)
            ce = tf.keras.losses.sparse_categorical_crossentropy(labels, probs)
            ce = tf.reduce_mean(tf.reshape(ce, (k, -1)), axis=1)
            l1 = tf.reduce_sum(tf.abs(mask), axis=(1, 2))
            loss = tf.reduce_sum(ce + costs * l1)
        grads = tape.gradient(loss, [mask_raw, pattern_raw])
        opt.apply_gradients(zip(grads, [mask_raw, pattern_raw], strict=True))
        hit = tf.cast(tf.equal(tf.argmax(probs, axis=1), labels), tf.float32)
        return tf.reduce_mean(tf.reshape(hit, (k, -1)), axis=1), l1, mask

    best_l1 = np.full(k, np.inf)
    best_mask = np.zeros((k, h, w), np.float32)
    best_pattern = np.zeros((k, h, w, c), np.float32)
    best_asr = np.zeros(k)
    cost = np.full(k, s.init_cost, np.float64)
    up = np.zeros(k, int)
    down = np.zeros(k, int)
    asr_sum = np.zeros(k)
    asr_n = 0
    stale, best_at_check = 0, np.full(k, np.inf)
    x_pool = np.asarray(x_clean, np.float32)
    for i in range(s.steps):
        batch = x_pool[rng.choice(len(x_pool), s.batch_size, replace=len(x_pool) < s.batch_size)]
        asr, l1, _ = step(tf.constant(batch))
        asr, l1 = asr.numpy(), l1.numpy()
        asr_sum += asr
        asr_n += 1
        improved = (asr >= s.asr_threshold) & (l1 < best_l1)
        if improved.any():
            mask_now, pattern_now = (t.numpy() for t in current())
            best_l1[improved] = l1[improved]
            best_mask[improved] = mask_now[improved]
            best_pattern[improved] = pattern_now[improved]
            best_asr[improved] = asr[improved]
        if (i + 1) % s.check_every:
            continue
        held = asr_sum / asr_n >= s.asr_threshold
        asr_sum[:] = 0
        asr_n = 0
        up = np.where(held, up + 1, 0)
        down = np.where(held, 0, down + 1)
        grow = up >= s.patience
        shrink = down >= s.patience
        cost = np.where(grow, cost * s.cost_up, cost)
        cost = np.where(shrink, cost / s.cost_up**1.5, cost)
        up[grow] = 0
        down[shrink] = 0
        costs.assign(cost.astype(np.float32))
        if on_check:
            on_check(i + 1)
        shrank = best_l1 < best_at_check * (1.0 - s.min_improvement)
        stale = 0 if shrank.any() or not np.isfinite(best_l1).all() else stale + 1
        best_at_check = np.minimum(best_at_check, best_l1)
        if s.early_stop and stale >= s.early_stop:
            break
    mask_last, pattern_last = (t.numpy() for t in current())
    out = []
    for j, target in enumerate(targets):
        found = bool(np.isfinite(best_l1[j]))
        mask = best_mask[j] if found else mask_last[j]
        out.append(
            ReversedTrigger(
                target=int(target),
                mask=mask,
                pattern=best_pattern[j] if found else pattern_last[j],
                l1=float(best_l1[j]) if found else float(np.abs(mask).sum()),
                asr=float(best_asr[j]),
                found=found,
            )
        )
    return out


def anomaly_index(l1_norms: Sequence[float]) -> np.ndarray:
    """Neural Cleanse's outlier score: (median - l1) / (1.4826 * MAD), per label.

    A label whose index exceeds 2 has a suspiciously small trigger. Only small norms
    count (a large positive index); the sign is kept so callers can threshold one side.
    """
    norms = np.asarray(l1_norms, np.float64)
    median = np.median(norms)
    mad = 1.4826 * np.median(np.abs(norms - median))
    if mad == 0:
        return np.zeros_like(norms)
    return (median - norms) / mad
