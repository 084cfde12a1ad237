"""BackFuzz (submissions/backfuzz; "BackFuzz: An Automated Backdoor Detection Tool"): the DLFuzz loop finds inputs that trigger the
single-pixel all-to-all BadNet far more often than it hits the same y -> y+1 map on a clean
model; generated inputs keep the loop's invariants (range, seed index, label change, step
budget, occlusion square, the L2 ratio of queued inputs); detection ranks backdoored models
above the clean one."""

from __future__ import annotations

import dataclasses
import hashlib
import sys

import keras
import numpy as np
import pytest
from refsubs import build, by_id, entry_class, labels, open_public

from harness.api import GeneratedInputs
from harness.scoring.metrics import activation_rate

A2A = "mnist-badnets-pixel-a2a-v1"
CLEAN = "mnist-clean-a-s1-v1"
PATCH = "mnist-badnets-patch3-t0-v1"
NEXT = (np.arange(10) + 1) % 10  # the BackFuzz report's backdoor map y -> y + 1
BUDGET = 150  # one batch of 100 seeds already gives about this many inputs


@pytest.fixture(scope="module")
def opened(tiny_zoo):
    """(model, clean split) of the three tiny MNIST models used here."""
    return {mid: open_public(by_id(tiny_zoo, mid)) for mid in (A2A, CLEAN, PATCH)}


def _generate(opened, model_id: str, budget: int = BUDGET, **params) -> GeneratedInputs:
    model, clean = opened[model_id]
    keras.utils.set_random_seed(0)
    return build("backfuzz", **params).generate(model, clean, budget)


def _rate(opened, model_id: str, found: GeneratedInputs) -> float:
    model, clean = opened[model_id]
    return activation_rate(labels(model, found.x), clean.y[found.seed_index], NEXT)


def _digest(model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def _l2(d: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(d.reshape(len(d), -1) ** 2, axis=1))


def test_activation_rate_on_the_pixel_backdoor_far_above_clean(opened):
    """The BackFuzz report's headline: 54 % on the backdoored model vs 0 % on the clean one."""
    bad = _generate(opened, A2A)
    clean = _generate(opened, CLEAN)
    assert len(bad.x) >= 50 and len(clean.x) >= 50
    bad_rate, clean_rate = _rate(opened, A2A, bad), _rate(opened, CLEAN, clean)
    assert bad_rate > 0.4, bad_rate
    assert clean_rate < 0.15, clean_rate
    assert bad_rate - clean_rate > 0.3


def test_generated_inputs_keep_the_loop_invariants(opened):
    """In range, float32, valid seed index, at most ``budget``; every input changed its
    seed's label (what DLFuzz saves) within ``iterations`` RMS-normalised steps."""
    model, clean = opened[A2A]
    params = {"max_rounds": 1, "iterations": 3}
    found = _generate(opened, A2A, budget=60, **params)
    assert found.x.dtype == np.float32 and found.x.shape[1:] == clean.x.shape[1:]
    assert 0 < len(found.x) == len(found.seed_index) <= 60
    assert found.x.min() >= clean.input_range[0] and found.x.max() <= clean.input_range[1]
    seeds = clean.x[found.seed_index]
    assert (labels(model, found.x) != labels(model, seeds)).all()
    step_norm = 0.02 * np.sqrt(np.prod(clean.x.shape[1:]))
    assert (_l2(found.x - seeds) <= 3 * step_norm + 1e-4).all()


def test_generate_respects_a_small_budget_and_never_changes_weights(opened):
    model, _ = opened[A2A]
    before = _digest(model)
    assert len(_generate(opened, A2A, budget=7).x) == 7
    assert _digest(model) == before


#: Queue test settings: batches of 10 seeds keep the coverage held before each step small,
#: so coverage gains are common, and they come at L2 ratios on both sides of 0.15. Measured
#: (budget 100, random_seed 0-4, 1 and 2 intra-op threads, identical counts): 13-24 inputs
#: per run gained coverage, at L2 ratios from 0.046 to 0.38 (median 0.10-0.15); 8-14 of them
#: were under 0.15 and queued, 5-10 were over it and refused. The earlier setting (occlusion
#: 10, L2 ratio 0.05, batches of 100, budget 40) queued none here, as on the machine that
#: failed: after one forward pass over 100 seeds 96 of the 234 neurons are covered, 5
#: steps covered new ones for only 0-2 inputs a step, and always at ratios over 0.05, so
#: whether anything passed hung on last-bit differences.
QUEUE = {"batch_size": 10, "max_rounds": 2}
QUEUE_BUDGET = 100
MAX_L2 = 0.15


def _spy_queue(monkeypatch) -> list[tuple[int, np.ndarray]]:
    """Every (seed index, input) that ``_fuzz`` hands back for another round."""
    module = sys.modules[entry_class("backfuzz").__module__]
    queued: list[tuple[int, np.ndarray]] = []
    original = module._Fuzzer._fuzz

    def spy(self, queue, *args):
        following = original(self, queue, *args)
        queued.extend((seed, x) for seed, _, x in following)
        return following

    monkeypatch.setattr(module._Fuzzer, "_fuzz", spy)
    return queued


def test_queued_inputs_respect_the_l2_ratio(opened, monkeypatch):
    """Only inputs under ``max_l2_ratio`` (and with coverage gain) are fuzzed further."""
    queued = _spy_queue(monkeypatch)
    _, clean = opened[A2A]

    def ratios() -> np.ndarray:
        """L2 ratios in float64; the submission's float32 ones differ by under 1e-6."""
        if not queued:
            return np.zeros(0)
        seeds = clean.x[[s for s, _ in queued]].astype(np.float64)
        moved = np.stack([x for _, x in queued]).astype(np.float64) - seeds
        return np.linalg.norm(moved.reshape(len(moved), -1), axis=1) / np.linalg.norm(
            seeds.reshape(len(seeds), -1), axis=1
        )

    limit = MAX_L2 * (1 + 1e-5)  # room for float32 rounding only
    # Without the rule, coverage-gaining inputs over the limit are queued (measured 7-13 of
    # 15-24, ratios up to 0.22-0.43): the rule has inputs to refuse.
    _generate(opened, A2A, budget=QUEUE_BUDGET, max_l2_ratio=10.0, **QUEUE)
    unbounded = ratios()
    assert np.sum(unbounded > limit) >= 3, unbounded
    queued.clear()
    _generate(opened, A2A, budget=QUEUE_BUDGET, max_l2_ratio=MAX_L2, **QUEUE)
    assert len(queued) >= 3, "expected some inputs to pass the coverage and L2 tests"
    assert np.all(ratios() < limit), ratios()
    queued.clear()
    sub = build("backfuzz", max_l2_ratio=1e-6, **QUEUE)
    sub.generate(*opened[A2A], QUEUE_BUDGET)
    assert not queued and sub.stats_["queued"] == 0


def test_occlusion_confines_each_seed_to_one_square(opened):
    """occlusion = 5: the perturbation of every input lies in a 5x5 square, the same one
    for all inputs of a seed."""
    _, clean = opened[A2A]
    found = _generate(opened, A2A, budget=400, occlusion=5, iterations=10)
    assert len(found.x) > 0
    boxes: dict[int, set[tuple[int, int]]] = {}
    for x, seed in zip(found.x, found.seed_index, strict=True):
        rows, cols = np.nonzero(np.abs(x - clean.x[seed])[..., 0] > 0)
        assert len(rows) > 0
        assert rows.max() - rows.min() < 5 and cols.max() - cols.min() < 5
        boxes.setdefault(int(seed), set()).update(zip(rows.tolist(), cols.tolist(), strict=True))
    for pixels in boxes.values():
        rows, cols = zip(*pixels, strict=True)
        assert max(rows) - min(rows) < 5 and max(cols) - min(cols) < 5


def test_same_seed_same_inputs(opened):
    first = _generate(opened, CLEAN, budget=30)
    second = _generate(opened, CLEAN, budget=30)
    np.testing.assert_array_equal(first.seed_index, second.seed_index)
    np.testing.assert_array_equal(first.x, second.x)


def test_differential_strategy_needs_poisoned_samples(opened):
    model, clean = opened[A2A]
    with pytest.raises(ValueError, match="poisoned"):
        build("backfuzz", strategy="differential").generate(model, clean, 10)


def test_differential_strategy_as_an_oracle(opened, tiny_zoo):
    """With the model's own poisoned samples (oracle), the BackFuzz report's 53 % is within reach."""
    model, clean = opened[A2A]
    poisoned = by_id(tiny_zoo, A2A).test_sets().x_poisoned[:100].astype(np.float32)
    oracle = dataclasses.replace(clean, poisoned=poisoned)
    keras.utils.set_random_seed(0)
    sub = build("backfuzz", strategy="differential")
    found = sub.generate(model, oracle, BUDGET)
    assert _rate(opened, A2A, found) > 0.4
    empty = dataclasses.replace(clean, poisoned=poisoned[:0])  # an oracle run on a clean model
    assert len(sub.generate(model, empty, 10).x) == 10


@pytest.mark.parametrize(
    "params",
    [
        {"strategy": "nope"},
        {"occlusion": -1},
        {"occlusion": 2.5},
        {"iterations": 0},
        {"step": 0.0},
        {"threshold": 1.0},
        {"detect_center": 1.0},
    ],
)
def test_bad_params_are_refused(params):
    with pytest.raises(ValueError):
        build("backfuzz", **params)


def test_occlusion_larger_than_the_image_is_refused(opened):
    with pytest.raises(ValueError, match="larger than"):
        build("backfuzz", occlusion=29).generate(*opened[CLEAN], 5)


def test_transition_stats_see_a_shift_map_and_a_sink():
    stats = sys.modules[entry_class("backfuzz").__module__].transition_stats
    src = np.repeat(np.arange(10), 20)
    shift = stats(src, (src + 1) % 10, 10)
    assert shift["map_share"] == 1.0 and shift["concentration"] > 0.95
    sink = stats(src[src != 3], np.full(180, 3), 10)
    assert sink["targets"] == [3] and sink["sink_share"] == 1.0
    spread = stats(src, (src + 1 + np.arange(200) % 9) % 10, 10)
    assert spread["concentration"] < 0.2
    assert stats(src[:0], src[:0], 10)["concentration"] == pytest.approx(1 / 9)


def test_detect_ranks_backdoors_above_clean(opened):
    scores = {}
    for mid in (A2A, PATCH, CLEAN):
        model, clean = opened[mid]
        keras.utils.set_random_seed(0)
        detection = build("backfuzz", detect_budget=200).detect(model, clean)
        assert 0.0 <= detection.score <= 1.0
        scores[mid] = detection
    # A ranking, not a fixed threshold: the tiny all-to-all BadNet's score moves with the
    # last bits of its training (0.41 built on one TensorFlow thread, 0.65 on two, on one
    # machine), the clean model's stays at 0.08-0.16 and the patch BadNet's near 0.85.
    assert scores[A2A].score > scores[CLEAN].score + 0.15, {k: v.score for k, v in scores.items()}
    assert scores[CLEAN].score < 0.5 < scores[PATCH].score
    assert scores[PATCH].target_labels[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "params",
    [{}, {"strategy": "high-weight"}, {"occlusion": 10}, {"occlusion": 5, "iterations": 10}],
)
def test_every_variant_beats_the_clean_baseline(opened, params):
    """The README's table, in miniature: each variant triggers y -> y+1 on the BadNet more
    often than on the clean model (all 200 seeds)."""
    bad = _generate(opened, A2A, budget=1000, **params)
    clean = _generate(opened, CLEAN, budget=1000, **params)
    assert _rate(opened, A2A, bad) > _rate(opened, CLEAN, clean) + 0.2
