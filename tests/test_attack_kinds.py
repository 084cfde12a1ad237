"""The trigger kinds beyond the blend (additive, warp) and the recipes that use them or
poison clean-label: SIG, the label-consistent attack, Refool, WaNet and Adaptive-Blend.

Designs and poisoning only (no training: a recorder stands in for the trainer); the
models these recipes build are checked by the demo zoo's floors and ``make test-slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_attacks import _Recorder

from harness.attacks import AttackContext, design, make_backdoor
from harness.attacks.base import TriggerSpec
from harness.attacks.kinds import (
    ADDITIVE,
    BLEND,
    WARP,
    AdditiveTrigger,
    WarpTrigger,
    from_arrays,
    kind_of,
    to_arrays,
    warp,
)
from harness.errors import SpecError

SHAPE = (28, 28, 1)
NEW = ("sig", "label_consistent", "refool", "wanet", "adaptive_blend")


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)).astype(np.float32) * 0.5, rng.integers(0, 10, n)


def _trained_on(name: str, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y) given, and (x, y) the recipe's implant handed to the trainer."""
    x, y = _data()
    trainer = _Recorder()
    make_backdoor(name, params, AttackContext(SHAPE, 10, 4, x, y, trainer)).implant(
        AttackContext(SHAPE, 10, 4, x, y, trainer)
    )
    seen_x, seen_y = trainer.fitted[-1]
    return x, y, seen_x, seen_y


def _changed(x: np.ndarray, seen: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.any(x != seen, axis=(1, 2, 3)))


# -- kinds --------------------------------------------------------------------------------


def test_an_additive_trigger_adds_a_signed_pattern_and_clips():
    pattern = np.full(SHAPE, 0.3, np.float32)
    pattern[:, :14] = -0.3
    trig = AdditiveTrigger(np.ones(SHAPE[:2], np.float32), pattern, np.zeros(10, int))
    x = np.full((2, *SHAPE), 0.8, np.float32)
    out = trig.stamp(x)
    assert np.allclose(out[:, :, 14:], 1.0) and np.allclose(out[:, :, :14], 0.5)


def test_a_warp_with_no_flow_is_the_identity_and_a_whole_pixel_flow_shifts():
    x = np.random.default_rng(0).random((3, *SHAPE)).astype(np.float32)
    assert np.allclose(warp(x, np.zeros((*SHAPE[:2], 2), np.float32)), x)
    flow = np.zeros((*SHAPE[:2], 2), np.float32)
    flow[..., 1] = 2.0  # sample two columns to the right
    assert np.allclose(warp(x, flow)[:, :, :-2], x[:, :, 2:])
    assert np.allclose(warp(x, flow)[:, :, -1], x[:, :, -1])  # clamped at the border


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (2, 6, 5, 1), elements=st.floats(0, 1, width=32)),
    arrays(np.float32, (6, 5, 2), elements=st.floats(-8, 8, width=32)),
)
def test_a_warp_only_mixes_pixels_of_its_image(x, flow):
    out = warp(x, flow)
    assert out.shape == x.shape and np.isfinite(out).all()
    for i in range(len(x)):
        assert x[i].min() - 1e-6 <= out[i].min() and out[i].max() <= x[i].max() + 1e-6


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (2, 4, 4, 1), elements=st.floats(0, 1, width=32)),
    arrays(np.float32, (4, 4, 1), elements=st.floats(-2, 2, width=32)),
)
def test_an_additive_trigger_stays_in_the_input_range(x, pattern):
    out = AdditiveTrigger(np.ones((4, 4), np.float32), pattern, np.zeros(2, int)).stamp(x)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_every_kind_survives_the_triggers_file_and_an_old_file_reads_as_blends():
    target_of = np.array([1, 1, 1])
    flow = np.random.default_rng(1).normal(size=(*SHAPE[:2], 2)).astype(np.float32)
    mask, pattern = np.ones(SHAPE[:2], np.float32) * 0.2, np.full(SHAPE, 0.5, np.float32)
    triggers = [
        TriggerSpec(mask, pattern, target_of),
        AdditiveTrigger(mask, pattern - 0.5, target_of),
        WarpTrigger(mask, np.zeros(SHAPE, np.float32), target_of, flow=flow),
    ]
    back = from_arrays(to_arrays(triggers), [target_of.tolist()] * 3)
    assert [kind_of(t) for t in back] == [BLEND, ADDITIVE, WARP]
    x = np.random.default_rng(2).random((2, *SHAPE)).astype(np.float32)
    for before, after in zip(triggers, back, strict=True):
        assert np.array_equal(before.stamp(x), after.stamp(x))
    old = {"mask_0": mask, "pattern_0": pattern}
    assert kind_of(from_arrays(old, [[1, 1, 1]])[0]) == BLEND
    with pytest.raises(ValueError, match="unknown kind"):
        from_arrays({**old, "kind_0": np.array("teleport")}, [[1, 1, 1]])


def test_a_store_object_reads_its_triggers_back_and_a_mismatch_is_one_clear_error(tmp_path):
    """ZooModel.trigger_specs pairs the stored arrays with the truth's target maps; an
    object whose two disagree is damaged, said with its id and the fix."""
    from harness.errors import ZooError
    from harness.zoo.records import TruthRecord
    from harness.zoo.store import ZooModel

    model = ZooModel("m", "h", tmp_path)
    model.private_dir.mkdir()
    mask, pattern = np.ones(SHAPE[:2], np.float32), np.full(SHAPE, 0.1, np.float32)
    triggers = [AdditiveTrigger(mask, pattern, np.zeros(10, np.int64))]
    np.savez(model.private_dir / "triggers.npz", **to_arrays(triggers))

    def truth(maps: list[list[int]]) -> None:
        TruthRecord("m", "h", True, "sig", {}, [0], False, maps, [9], 0.99,
                    0.98, 0.8, "mnist_cnn_a", 12, 1.0, "0").write(model.private_dir / "truth.json")  # fmt: skip

    truth([[0] * 10])
    (back,) = model.trigger_specs()
    assert kind_of(back) == ADDITIVE and np.array_equal(back.pattern, pattern)
    truth([])
    with pytest.raises(ZooError, match="zoo model m is damaged .1 triggers but 0 target maps"):
        model.trigger_specs()


# -- designs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_a_new_recipe_designs_from_its_seed_alone(name):
    one, two = design(name, {}, SHAPE, 10, 3), design(name, {}, SHAPE, 10, 3)
    other = design(name, {}, SHAPE, 10, 4)
    assert one.poisoned and one.targets == [0] and not one.all_to_all
    x = np.random.default_rng(0).random((2, *SHAPE)).astype(np.float32)
    stamped = [[t.stamp(x) for t in b.triggers] for b in (one, two, other)]
    assert all(np.array_equal(a, b) for a, b in zip(stamped[0], stamped[1], strict=True))
    if name not in ("sig", "label_consistent"):  # a fixed signal and fixed corner patches
        assert not all(np.array_equal(a, b) for a, b in zip(stamped[0], stamped[2], strict=True))
    twin = design(name, {"clean_counterpart": True}, SHAPE, 10, 3)
    assert not twin.poisoned and twin.params["counterpart_of"] == name


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("sig", {"delta_train": 0.5, "delta_test": 0.2}, "delta_train"),
        ("sig", {"signal": "square"}, "signal"),
        ("sig", {"share": 0.0}, "share"),
        ("wanet", {"k": 1}, "k must be"),
        ("wanet", {"poison_rate": 0.5, "cross_ratio": 2}, "more than the training set"),
        ("adaptive_blend", {"pieces": 15}, "square number"),
        ("adaptive_blend", {"alphas": (0.3, 0.2)}, "alpha_train"),
        ("refool", {"models": ["mirror"]}, "physical models are"),
        ("refool", {"candidates": 0}, "candidates"),
        ("label_consistent", {"amplitude": 0}, "amplitude"),
    ],
)
def test_a_bad_parameter_is_one_spec_error(name, params, words):
    with pytest.raises(SpecError, match=words):
        design(name, params, SHAPE, 10, 0)


def test_sig_adds_a_sinusoid_stronger_at_test_than_in_training():
    (trig,) = design(
        "sig", {"delta_train": 0.1, "delta_test": 0.3, "frequency": 6}, SHAPE, 10, 0
    ).triggers
    assert 0.28 < np.abs(trig.pattern).max() <= 0.3  # sampled at 28 columns
    assert np.allclose(trig.pattern[0], trig.pattern[-1])  # constant down each column
    x, y, seen_x, _ = _trained_on("sig", {"delta_train": 0.1, "delta_test": 0.3})
    moved = np.abs(seen_x - x)[_changed(x, seen_x)]
    assert 0.05 < moved.max() <= 0.1 + 1e-6  # trained on the fainter signal


def test_refool_keeps_the_most_salient_of_its_candidate_reflections():
    (one,) = design(
        "refool", {"candidates": 1, "alpha": 0.5, "alpha_test": 0.5}, SHAPE, 10, 9
    ).triggers
    (best,) = design(
        "refool", {"candidates": 8, "alpha": 0.5, "alpha_test": 0.5}, SHAPE, 10, 9
    ).triggers
    assert best.pattern.mean() >= one.pattern.mean()  # the first draw is among the eight
    assert np.isclose(best.pattern.max(), 0.5, atol=1e-3)  # a scene peaks at 1, scaled by alpha


def test_the_wanet_field_moves_pixels_by_about_s_over_two():
    small = design("wanet", {"s": 0.5}, SHAPE, 10, 0).params["max_shift_px"]
    large = design("wanet", {"s": 1.0}, SHAPE, 10, 0).params["max_shift_px"]
    assert 0.1 < small < 2.0 and np.isclose(large, 2 * small, rtol=1e-3)


# -- poisoning ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sig", {"share": 0.5}),
        ("refool", {"share": 0.5}),
        ("label_consistent", {"share": 0.5, "epsilon": 0.0}),
    ],
)
def test_a_clean_label_attack_stamps_the_target_class_and_changes_no_label(name, params):
    x, y, seen_x, seen_y = _trained_on(name, params)
    changed = _changed(x, seen_x)
    assert np.array_equal(seen_y, y)
    assert np.all(y[changed] == 0)
    assert abs(len(changed) - 0.5 * np.count_nonzero(y == 0)) <= 2
    # its counterpart stamps as many images, of every class, labels true
    _, _, twin_x, twin_y = _trained_on(name, {**params, "clean_counterpart": True})
    spread = _changed(x, twin_x)
    assert np.array_equal(twin_y, y) and abs(len(spread) - len(changed)) <= 2
    assert len(np.unique(y[spread])) == 10


def test_wanet_relabels_its_poisoned_share_and_jitters_the_cross_share():
    x, y, seen_x, seen_y = _trained_on("wanet", {"poison_rate": 0.1, "cross_ratio": 2.0})
    changed = _changed(x, seen_x)
    relabelled = np.flatnonzero(seen_y != y)
    assert abs(len(changed) - 0.3 * len(x)) <= 3
    assert np.all(seen_y[relabelled] == 0) and np.isin(relabelled, changed).all()
    assert abs(len(relabelled) - 0.1 * len(x) * 0.9) < 0.03 * len(x)  # a tenth were 0 already
    _, _, twin_x, twin_y = _trained_on("wanet", {"clean_counterpart": True})
    assert np.array_equal(twin_y, y) and np.array_equal(twin_x, seen_x)


def test_adaptive_blend_stamps_partial_triggers_and_keeps_its_cover_labels():
    params = {"poison_rate": 0.02, "cover_rate": 0.02, "pieces": 16, "piece_rate": 0.5}
    x, y, seen_x, seen_y = _trained_on("adaptive_blend", params)
    changed = _changed(x, seen_x)
    assert len(changed) == 120
    assert (
        np.count_nonzero((seen_y != y) | ((seen_y == 0) & np.isin(np.arange(len(y)), changed)))
        <= 120
    )
    cells = np.abs(seen_x - x)[changed, ::7, ::7, 0] > 0  # one pixel per 7 x 7 piece
    assert np.all(cells.reshape(len(changed), -1).sum(1) == 8)  # half the pieces each
    assert np.count_nonzero(seen_y[changed] == 0) >= 60  # the poisoned half, relabelled
    _, _, twin_x, twin_y = _trained_on("adaptive_blend", {**params, "clean_counterpart": True})
    assert np.array_equal(twin_y, y) and np.array_equal(twin_x, seen_x)
