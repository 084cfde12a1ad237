"""The attack track's contract and table, without a sandbox: what a poisoned set may be
(harness.tracks.attack), the harness's noise augmentation, the evasion metric and the
validity of an entry (harness.attack_track.score)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.api import Track
from harness.attack_track.score import MIN_ASR, attack_rows
from harness.attacks.base import TriggerSpec
from harness.results import AttackInstance, ModelFacts, TaskRecord
from harness.scoring.metrics import evasion
from harness.submission.validate import OutputError
from harness.tracks.attack import LIMITS, read_poisoned, training_set, trigger_rms

N, CLASSES = 200, 10


def _train(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((N, 6, 6, 1)).astype(np.float32), rng.integers(0, CLASSES, N)


def _reply(tmp_path, x, y, *, masks=None, patterns=None, targets=(0,), rate=0.0, share=0.0):
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "t.npy", np.asarray(targets))
    masks = masks if masks is not None else [np.pad(np.ones((2, 2), np.float32), ((4, 0), (4, 0)))]
    patterns = patterns if patterns is not None else [np.ones((6, 6, 1), np.float32)]
    for i, (m, p) in enumerate(zip(masks, patterns, strict=True)):
        np.save(tmp_path / f"m{i}.npy", m)
        np.save(tmp_path / f"p{i}.npy", p)
    return {
        "type": "PoisonedSet",
        "x": "x.npy",
        "y": "y.npy",
        "targets": "t.npy",
        "masks": [f"m{i}.npy" for i in range(len(masks))],
        "patterns": [f"p{i}.npy" for i in range(len(patterns))],
        "augment_rate": rate,
        "augment_share": share,
    }


def _poisoned(
    share: float, relabel: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = _train()
    xp, yp = x.copy(), y.copy()
    k = int(share * N)
    xp[:k, 4:, 4:, :] = 1.0
    if relabel:
        yp[:k] = 0
    return x, y, xp, yp


def _read(tmp_path, reply, x, y):
    return read_poisoned(reply, tmp_path, x, y, CLASSES, (0.0, 1.0))


def test_a_poisoned_set_within_the_limits_is_read_with_what_it_changed(tmp_path):
    x, y, xp, yp = _poisoned(0.1)
    hand_in = _read(tmp_path, _reply(tmp_path, xp, yp), x, y)
    assert hand_in.images_changed == pytest.approx(0.1)
    assert hand_in.labels_changed == pytest.approx(np.mean(yp != y))
    assert hand_in.targets == [0]
    assert hand_in.triggers[0].size == 4


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r, t: r.update(type="dict"), "not harness.api.PoisonedSet"),
        (
            lambda r, t: np.save(t / "x.npy", np.zeros((N // 2, 6, 6, 1), np.float32)),
            "keep the training set's",
        ),
        (
            lambda r, t: np.save(t / "x.npy", np.full((N, 6, 6, 1), 255.0, np.float32)),
            "outside the input range",
        ),
        (
            lambda r, t: np.save(t / "x.npy", np.full((N, 6, 6, 1), np.nan, np.float32)),
            "NaN or infinite",
        ),
        (lambda r, t: np.save(t / "y.npy", np.full(N, 0.5)), "integer labels"),
        (lambda r, t: np.save(t / "y.npy", np.full(N, CLASSES)), "labels outside"),
        (lambda r, t: np.save(t / "t.npy", np.asarray([CLASSES])), "outside 0..9"),
        (lambda r, t: np.save(t / "t.npy", np.arange(9)), "1 to 8 triggers"),
        (lambda r, t: np.save(t / "m0.npy", np.zeros((6, 6), np.float32)), "stamps nothing"),
        (lambda r, t: np.save(t / "m0.npy", np.ones((3, 3), np.float32)), "give (H, W)"),
        (
            lambda r, t: np.save(t / "p0.npy", np.full((6, 6, 1), 9.0, np.float32)),
            "outside the input range",
        ),
        (lambda r, t: r.update(x="../x.npy"), "not a file name"),
        (lambda r, t: r.update(augment_rate=1.0), "augment_rate is 1.0"),
        (lambda r, t: r.update(augment_share="all"), "augment_share is 'all'"),
    ],
)
def test_a_poisoned_set_outside_the_contract_is_refused_with_its_reason(tmp_path, change, words):
    x, y, xp, yp = _poisoned(0.1)
    reply = _reply(tmp_path, xp, yp)
    change(reply, tmp_path)
    with pytest.raises(OutputError, match=None) as exc:
        _read(tmp_path, reply, x, y)
    assert words in str(exc.value)


def test_the_limits_on_relabelled_and_changed_images_hold(tmp_path):
    x, y, xp, yp = _poisoned(LIMITS.max_label_share + 0.05)
    with pytest.raises(OutputError, match="relabelled"):
        _read(tmp_path, _reply(tmp_path, xp, yp), x, y)
    x, y, xp, yp = _poisoned(LIMITS.max_image_share + 0.05, relabel=False)
    with pytest.raises(OutputError, match="changed .* of the training images"):
        _read(tmp_path, _reply(tmp_path, xp, yp), x, y)


def test_the_noise_augmentation_touches_only_unchanged_images_and_keeps_every_label(tmp_path):
    x, y, xp, yp = _poisoned(0.1)
    hand_in = _read(tmp_path, _reply(tmp_path, xp, yp, rate=0.5, share=1.0), x, y)
    sets = training_set(hand_in, x, y, np.random.default_rng(0))
    xs, ys, ytrue = sets.x, sets.y, sets.y_true
    assert np.array_equal(ys, yp) and np.array_equal(ytrue, y)
    relabelled = np.flatnonzero(yp != y)  # the counterpart trains on these as they are
    assert np.array_equal(sets.x_counterpart[relabelled], xs[relabelled])
    assert np.array_equal(xs[:20], xp[:20])  # the hand-in's own images as it made them
    noisy = np.abs(xs[20:] - x[20:]).reshape(N - 20, -1).max(axis=1) > 0
    assert noisy.mean() > 0.8  # most untouched images got part of the trigger
    outside = np.ones((6, 6), bool)
    outside[4:, 4:] = False
    assert np.array_equal(xs[20:, outside], x[20:, outside])  # only under the trigger's mask


def test_evasion_is_one_minus_the_best_detector_on_each_bootstrap_draw():
    labels = [1, 1, 1, 0, 0, 0]
    perfect, useless, inverted = (
        [0.9, 0.8, 0.7, 0.1, 0.2, 0.3],
        [0.5] * 6,
        [0.1, 0.2, 0.3, 0.9, 0.8, 0.7],
    )
    point, low, high = evasion(labels, [useless, perfect])
    assert point == 0.0 and low == 0.0 and high == 0.0
    point, low, high = evasion(labels, [useless])
    assert point == 0.5 and low == high == 0.5
    assert evasion(labels, [inverted])[0] == 1.0  # a detector that is wrong is no detector's best
    assert np.isnan(evasion([1, 1], [[0.5, 0.5]])[0])


def _instance(attack: str, k: int, asr: float, ca: float = 0.98, cp: float = 0.985, status="ok",
              cp_asr: float | None = 0.01):  # fmt: skip
    ok = status == "ok"
    return AttackInstance(
        "r", attack, "h", k, status, None if ok else "poison() relabelled 50.0%",
        model_id=f"{attack}-{k}" if ok else None,
        counterpart_id=f"{attack}-{k}-counterpart" if ok else None,
        ca=ca if ok else None, counterpart_ca=cp if ok else None, asr=asr if ok else None,
        counterpart_asr=cp_asr if ok else None,
    )  # fmt: skip


def _detect(detector: str, model: str, score: float) -> TaskRecord:
    return TaskRecord(
        "r", detector, "x", False, model, "m", Track.DETECT.value, "ok", {}, {"score": score},
        None, None, 1.0, "bwrap", ModelFacts(),
    )  # fmt: skip


def test_the_table_scores_each_hand_in_and_says_why_an_entry_is_invalid():
    instances = [_instance("caught", k, 1.0) for k in range(3)]
    instances += [_instance("evades", k, 0.99) for k in range(3)]
    instances += [_instance("weak", k, MIN_ASR - 0.1) for k in range(3)]
    instances += [_instance("costly", k, 1.0, ca=0.95) for k in range(3)]
    instances += [_instance("cheater", 0, 1.0), _instance("cheater", 1, 0, status="invalid")]
    # A trigger the clean counterparts obey as well: success without a backdoor.
    instances += [_instance("no-backdoor", k, 1.0, cp_asr=0.99) for k in range(3)]
    instances += [_instance("unmeasured", k, 1.0, cp_asr=None) for k in range(3)]
    records = []
    for inst in instances:
        if inst.model_id:
            caught = inst.attack == "caught"
            records += [
                _detect("nc", inst.model_id, 0.9 if caught else 0.5),
                _detect("nc", str(inst.counterpart_id), 0.1 if caught else 0.5),
                _detect("null", inst.model_id, 0.5),
                _detect("null", str(inst.counterpart_id), 0.5),
            ]
    rows = {r.attack: r for r in attack_rows(instances, records)}
    assert rows["caught"].valid and rows["caught"].evasion == 0.0
    assert rows["caught"].auc == {"nc": 1.0, "null": 0.5}
    assert rows["evades"].valid and rows["evades"].evasion == 0.5
    assert not rows["weak"].valid and "ASR" in str(rows["weak"].reason)
    assert not rows["costly"].valid and "points under" in str(rows["costly"].reason)
    assert rows["costly"].ca_drop == pytest.approx(3.5)
    assert not rows["cheater"].valid and "relabelled" in str(rows["cheater"].reason)
    assert not rows["no-backdoor"].valid
    assert "counterparts obey the trigger too" in str(rows["no-backdoor"].reason)
    assert rows["no-backdoor"].backdoor_asr == pytest.approx(0.01)
    assert rows["caught"].counterpart_asr == pytest.approx(0.01)
    assert not rows["unmeasured"].valid and "not measured" in str(rows["unmeasured"].reason)
    ordered = [r.attack for r in attack_rows(instances, records)]
    assert ordered[:2] == ["evades", "caught"]  # valid first, by evasion


def test_a_trigger_s_budget_is_how_far_it_moves_an_image():
    # A white patch of k pixels on black images moves each by sqrt(k / pixels), exactly.
    x, y = np.zeros((20, 6, 6, 1), np.float32), np.arange(20) % CLASSES
    mask = np.zeros((6, 6), np.float32)
    mask[:2, :2] = 1.0
    trig = TriggerSpec(mask, np.ones((6, 6, 1), np.float32), np.full(CLASSES, 0))
    assert trigger_rms(trig, x, y, (0.0, 1.0)) == pytest.approx(np.sqrt(4 / 36))
    assert trigger_rms(trig, x * 2 - 1, y, (-1.0, 1.0)) == pytest.approx(np.sqrt(4 / 36))
    assert trigger_rms(trig, x[y == 0], y[y == 0], (0.0, 1.0)) == 0.0  # only the target class


def test_a_whole_image_trigger_is_refused_and_one_inside_the_budget_is_read(tmp_path):
    x, y = _train()
    whole = np.ones((6, 6), np.float32)
    # The red team's "trigger": a target-class training image over the whole input, no
    # image poisoned. Its clean counterpart would obey it too; the budget refuses it first.
    reply = _reply(tmp_path, x, y, masks=[whole], patterns=[x[y == 0][0]])
    with pytest.raises(OutputError, match=r"trigger 0 moves .* budget is 0\.3"):
        _read(tmp_path, reply, x, y)
    # A white blend over the whole image, just inside the budget and just outside it.
    white = np.ones((6, 6, 1), np.float32)
    unit = trigger_rms(TriggerSpec(whole, white, np.full(CLASSES, 0)), x, y, (0.0, 1.0))
    for scale, inside in ((0.99, True), (1.01, False)):
        alpha = scale * LIMITS.max_trigger_rms / unit
        reply = _reply(tmp_path, x, y, masks=[whole * alpha], patterns=[white])
        if inside:
            assert len(_read(tmp_path, reply, x, y).triggers) == 1
        else:
            with pytest.raises(OutputError, match="budget"):
                _read(tmp_path, reply, x, y)


@pytest.mark.fuzz
@given(
    mask=hnp.arrays(np.float32, (6, 6), elements=st.floats(0, 1, width=32)),
    pattern=hnp.arrays(np.float32, (6, 6, 1), elements=st.floats(0, 1, width=32)),
    target=st.integers(0, CLASSES - 1),
)
def test_any_trigger_is_read_exactly_when_it_keeps_the_budget(tmp_path_factory, mask, pattern,
                                                              target):  # fmt: skip
    x, y = _train()
    folder = tmp_path_factory.mktemp("reply")
    reply = _reply(folder, x, y, masks=[mask], patterns=[pattern], targets=(target,))
    trig = TriggerSpec(mask, pattern, np.full(CLASSES, target))
    moved = trigger_rms(trig, x, y, (0.0, 1.0))
    if not np.any(mask > 0):
        with pytest.raises(OutputError, match="empty"):
            _read(folder, reply, x, y)
    elif moved > LIMITS.max_trigger_rms:
        with pytest.raises(OutputError, match="budget"):
            _read(folder, reply, x, y)
    else:
        assert len(_read(folder, reply, x, y).triggers) == 1


# -- trigger kinds: a signal added, a warp -----------------------------------------------------
class _KindsHandIn:
    """Poisons through the contract with one trigger of each kind (worker side)."""

    def poison(self, x, y, rng):  # noqa: ANN001, ANN201
        from harness.api import AdditiveTrigger, PoisonedSet, Trigger, WarpTrigger

        h, w = x.shape[1:3]
        flow = np.zeros((h, w, 2), np.float32)
        flow[..., 1] = 0.5
        signal = np.full(x.shape[1:], 0.2, np.float32)
        triggers = [
            Trigger(
                np.pad(np.ones((2, 2), np.float32), ((4, 0), (4, 0))),
                np.ones(x.shape[1:], np.float32),
            ),
            AdditiveTrigger(np.ones((h, w), np.float32), signal),
            WarpTrigger(flow),
        ]
        chosen = np.flatnonzero(y != 0)[:15]
        x[chosen] = triggers[2].stamp(x[chosen])
        y[chosen] = 0
        return PoisonedSet(x, y, triggers, [0, 0, 0])


def _through_the_worker(tmp_path, hand_in, x, y):
    """poison_call (the sandbox's side) then read_poisoned (the host's), on real files."""
    from harness.tracks.attack import poison_call

    np.savez(tmp_path / "train.npz", x=x, y=y)
    out = tmp_path / "out"
    out.mkdir()
    reply = poison_call(hand_in, {"train_file": str(tmp_path / "train.npz"), "seed": 1}, out)
    return reply, read_poisoned(reply, out, x, y, CLASSES, (0.0, 1.0))


def test_an_additive_and_a_warp_trigger_cross_the_contract_with_their_kinds(tmp_path):
    from harness.attacks.kinds import ADDITIVE, BLEND, WARP, kind_of

    x, y = _train()
    reply, hand_in = _through_the_worker(tmp_path, _KindsHandIn(), x.copy(), y.copy())
    assert reply["kinds"] == [BLEND, ADDITIVE, WARP]
    assert [kind_of(t) for t in hand_in.triggers] == [BLEND, ADDITIVE, WARP]
    stamped = hand_in.triggers[2].stamp(x[:3])
    assert np.allclose(stamped[:, :, :-1], 0.5 * (x[:3, :, :-1] + x[:3, :, 1:]), atol=1e-6)
    assert np.allclose(hand_in.triggers[1].stamp(x[:3]), np.clip(x[:3] + 0.2, 0, 1))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r, t: r.update(kinds=["blend", "additive", "teleport"]), "of kind 'teleport'"),
        (lambda r, t: np.save(t / "out" / r["flows"][2], np.zeros((6, 6, 3))), "give (H, W, 2)"),
        (lambda r, t: np.save(t / "out" / r["flows"][2], np.full((6, 6, 2), np.inf)), "not finite"),
        (lambda r, t: np.save(t / "out" / r["flows"][2], np.full((6, 6, 2), 50.0)), "farther"),
        (lambda r, t: np.save(t / "out" / r["flows"][2], np.zeros((6, 6, 2))), "warps nothing"),
        (lambda r, t: np.save(t / "out" / r["patterns"][1], np.full((6, 6, 1), -3.0)), "outside"),
        (lambda r, t: r.update(augment_rate=0.5, augment_share=0.5), "has no pixels to sub-mask"),
        (lambda r, t: r["flows"].__setitem__(2, None), "lists no flow"),
    ],
)
def test_a_trigger_kind_outside_the_contract_is_refused_with_its_reason(tmp_path, change, words):
    x, y = _train()
    reply, _ = _through_the_worker(tmp_path, _KindsHandIn(), x.copy(), y.copy())
    change(reply, tmp_path)
    with pytest.raises(OutputError) as exc:
        read_poisoned(reply, tmp_path / "out", x, y, CLASSES, (0.0, 1.0))
    assert words in str(exc.value)


def test_a_clean_label_hand_ins_counterpart_sees_its_trigger_on_every_class(tmp_path):
    x, y = _train()
    xp = x.copy()
    target = np.flatnonzero(y == 0)  # clean-label: stamp the target class, keep labels
    xp[target, 4:, 4:, :] = 1.0
    hand_in = _read(tmp_path, _reply(tmp_path, xp, y.copy()), x, y)
    sets = training_set(hand_in, x, y, np.random.default_rng(3))
    assert np.array_equal(sets.x, xp) and np.array_equal(sets.y, y)
    assert np.array_equal(sets.x_counterpart[target], x[target])  # the attack's images undone
    shown = np.flatnonzero(np.any(sets.x_counterpart != x, axis=(1, 2, 3)))
    assert len(shown) == len(target) and not np.isin(shown, target).any()
    assert len(np.unique(y[shown])) >= 5  # drawn from every class, labels true
    assert np.all(sets.x_counterpart[shown, 4:, 4:, :] == 1.0)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float32, (2, 5, 7, 1), elements=st.floats(0, 1, width=32)),
    hnp.arrays(np.float32, (5, 7, 2), elements=st.floats(-9, 9, width=32)),
    hnp.arrays(np.float32, (5, 7, 1), elements=st.floats(-1, 1, width=32)),
)
def test_the_contract_stamps_as_the_harness_does(x, flow, signal):
    """A hand-in poisons with harness.api's triggers; the harness tests with its own
    (harness.attacks.kinds): the two must stamp alike."""
    from harness.api import AdditiveTrigger, WarpTrigger
    from harness.attacks import kinds

    mask = np.ones((5, 7), np.float32)
    np.testing.assert_allclose(WarpTrigger(flow).stamp(x), kinds.warp(x, flow), atol=1e-5)
    ours = kinds.AdditiveTrigger(mask, signal, np.zeros(2, int)).stamp(x)
    np.testing.assert_allclose(AdditiveTrigger(mask, signal).stamp(x), ours, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    flow=hnp.arrays(
        np.float32,
        st.sampled_from([(6, 6, 2), (6, 6, 3), (6, 5, 2), (6, 6)]),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    ),
    kind=st.sampled_from(["warp", "blend", "additive", "Warp", "", None, 3]),
)
def test_any_flow_or_kind_is_read_as_a_bounded_trigger_or_refused_with_one_line(flow, kind):
    """Whatever a hand-in declares (generated: any shape, NaN, infinities, huge moves, any
    kind), the host reads a trigger the harness can apply or raises OutputError."""
    import tempfile
    from pathlib import Path

    from harness.attacks.kinds import WarpTrigger as HarnessWarp

    x, y = _train()
    with tempfile.TemporaryDirectory() as tmp:
        reply, _ = _through_the_worker(Path(tmp), _KindsHandIn(), x.copy(), y.copy())
        np.save(Path(tmp) / "out" / reply["flows"][2], flow)
        reply["kinds"][2] = kind
        try:
            hand_in = read_poisoned(reply, Path(tmp) / "out", x, y, CLASSES, (0.0, 1.0))
        except OutputError as exc:
            assert "\n" not in str(exc)
            return
    trig = hand_in.triggers[2]
    if isinstance(trig, HarnessWarp):
        assert np.isfinite(trig.flow).all() and np.abs(trig.flow).max() <= 6
        assert np.isfinite(trig.stamp(x[:2])).all()
