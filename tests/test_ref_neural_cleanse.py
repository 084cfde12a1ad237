"""The Neural Cleanse reference submission on real tiny-zoo models (submissions/neural-cleanse).

Fast tests use fewer reverse-engineering steps than the manifest (``FAST``); the paper's
reproduction targets with the manifest's own settings are marked slow.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from refsubs import build, by_id, labels, open_public

NAME = "neural-cleanse"
FAST = {"steps": 150, "batch_size": 16}
PATCH = "mnist-badnets-patch3-t0-v1"
CLEAN = "mnist-clean-b-s2-v1"


def _seeded(seed: int = 0) -> None:
    import keras

    keras.utils.set_random_seed(seed)  # what the sandbox worker does before every task


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": 0},
        {"batch_size": 2.5},
        {"asr_threshold": 1.5},
        {"unlearn_share": 0.0},
        {"threshold": -1.0},
        {"learning_rate": 0.0},
        {"unlearn_epochs": -1},
        {"values_per_step": 0},
        {"early_stop": -1},
    ],
)
def test_constructor_rejects_out_of_range_params(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build(NAME, **bad)


def test_many_class_models_get_a_smaller_batch_per_label():
    from harness.toolkit.label_scan import per_label_batch

    assert per_label_batch(32, 640, 10) == 32
    assert per_label_batch(32, 640, 100) == 6
    assert per_label_batch(32, 640, 10_000) == 1


def test_the_step_budget_is_counted_in_input_values():
    nc = build(NAME)
    assert nc.images_per_step((28, 28, 1)) == 640  # MNIST: 32 images per label of 10
    assert nc.images_per_step((55, 47, 3)) == 64  # the DeepID faces: 6 per label of 10
    assert build(NAME, values_per_step=10).images_per_step((55, 47, 3)) == 1


def _scan(index, optimised=None):
    from harness.toolkit.label_scan import LabelScan
    from harness.toolkit.reverse import ReversedTrigger

    index = np.asarray(index, float)
    keep = range(len(index)) if optimised is None else optimised
    blank = ReversedTrigger(0, np.zeros((2, 2)), np.zeros((2, 2, 1)), 1.0, 1.0, True)
    return LabelScan({k: blank for k in keep}, np.ones_like(index), index, [], False, 32)


def test_flags_only_labels_over_the_threshold_most_anomalous_first():
    nc = build(NAME, threshold=2.0)
    assert nc._flagged(_scan([0.5, 3.0, -1.0, 2.5, 2.0])) == [1, 3]
    assert nc._flagged(_scan([0.5, 1.9, -4.0])) == []
    # On a screened model only the labels optimised in full can be flagged.
    assert nc._flagged(_scan([0.5, 3.0, -1.0, 2.5], optimised=[0, 3])) == [3]
    assert nc._score(2.0) == pytest.approx(0.5)
    assert nc._score(4.0) > 0.95 and nc._score(0.0) < 0.05


def test_the_anomaly_index_can_take_its_median_and_mad_from_a_reference_sample():
    from harness.toolkit.label_scan import anomaly_index_against
    from harness.toolkit.reverse import anomaly_index

    ref = [10.0, 11.0, 12.0, 9.0, 10.5]
    index = anomaly_index_against([2.0, 10.0, 30.0], ref)
    mad = 1.4826 * np.median(np.abs(np.array(ref) - 10.5))
    assert index == pytest.approx([(10.5 - 2.0) / mad, 0.5 / mad, -19.5 / mad])
    assert anomaly_index_against([1.0, 2.0, 3.0]) == pytest.approx(anomaly_index([1.0, 2.0, 3.0]))


def _counting_reversals(monkeypatch, nc) -> list[int]:
    """Count the submission's calls of scan_labels (the costly step)."""
    module = sys.modules[type(nc).__module__]
    calls: list[int] = []
    real = module.scan_labels

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "scan_labels", counted)
    return calls


def test_detects_the_patch_badnet_and_unlearning_removes_it(tiny_zoo, monkeypatch):
    zoo_model = by_id(tiny_zoo, PATCH)
    model, clean = open_public(zoo_model)
    before = [w.copy() for w in model.get_weights()]
    nc = build(NAME, **FAST)
    reversals = _counting_reversals(monkeypatch, nc)
    _seeded()
    det = nc.detect(model, clean)
    index = np.asarray(det.extra["anomaly_index"])
    assert det.target_labels[0] == zoo_model.truth().targets[0] == 0, index
    assert index[0] > 2 and int(np.argmax(index)) == 0, index
    assert det.score > 0.5
    assert det.trigger.mask.shape == (28, 28) and det.trigger.pattern.shape == (28, 28, 1)
    # The reversed trigger is small (the real one is a 3x3 patch) and works on held-out images.
    tests = zoo_model.test_sets()
    assert det.trigger.mask.sum() < 20
    assert np.mean(labels(model, det.trigger.stamp(tests.x[:200])) == 0) > 0.9

    _seeded()  # the same seed as detect: repair reuses its reverse-engineering
    nc.repair(model, clean)
    assert len(reversals) == 1
    asr_before = np.mean(labels(model, tests.x_poisoned) == tests.y_tgt)
    asr_after = np.mean(nc.predict(tests.x_poisoned) == tests.y_tgt)
    ca_before = np.mean(labels(model, tests.x) == tests.y)
    ca_after = np.mean(nc.predict(tests.x) == tests.y)
    assert asr_before > 0.95 and asr_after < 0.3, (asr_before, asr_after)
    assert ca_after > ca_before - 0.03, (ca_before, ca_after)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_clean_model_is_not_flagged_and_repair_is_the_identity(tiny_zoo, monkeypatch):
    zoo_model = by_id(tiny_zoo, CLEAN)
    model, clean = open_public(zoo_model)
    nc = build(NAME, **FAST)
    reversals = _counting_reversals(monkeypatch, nc)
    _seeded()
    det = nc.detect(model, clean)
    # Measured: largest index 0.913 for Keras seeds 0-4 with 2 threads and 0-1 with 1.
    assert max(det.extra["anomaly_index"]) < 2 and det.score < 0.5, det.extra
    assert len(det.target_labels) == 1  # nothing flagged: the best guess only

    _seeded()
    nc.repair(model, clean)
    assert len(reversals) == 1
    _seeded(1)  # another seed, or another model, is reverse-engineered anew
    nc.detect(model, clean)
    assert len(reversals) == 2
    x = zoo_model.test_sets().x[:100]
    assert nc.model is model
    assert np.array_equal(nc.predict(x), labels(model, x))


def test_many_labels_are_screened_then_a_shortlist_and_a_sample_optimised_in_full(tiny_zoo):
    """The many-label procedure, forced on a 10-class BadNet: every label screened, the
    smallest 2 and 5 others optimised in full; the target is still found and flagged."""
    zoo_model = by_id(tiny_zoo, PATCH)
    model, clean = open_public(zoo_model)
    nc = build(NAME, **FAST, full_labels=4, candidates=2, reference=5, screen_steps=30)
    _seeded()
    det = nc.detect(model, clean)
    extra = det.extra
    optimised = [k for k, asr in enumerate(extra["reversed_asr"]) if asr is not None]
    assert extra["screened"] and len(extra["reference_labels"]) == 5 and len(optimised) == 7
    assert set(extra["reference_labels"]) <= set(optimised)
    assert det.target_labels[0] == zoo_model.truth().targets[0] == 0, extra["anomaly_index"]
    assert det.score > 0.5 and 0 not in extra["reference_labels"]


def test_same_seed_same_detection(tiny_zoo):
    model, clean = open_public(by_id(tiny_zoo, PATCH))
    runs = []
    for _ in range(2):
        _seeded(7)
        det = build(NAME, steps=40, batch_size=8).detect(model, clean)
        runs.append((det.score, det.extra["l1_norms"]))
    assert runs[0] == runs[1]


# -- reproduction targets (docs/REPRODUCTION.md) on the default zoo, manifest settings -----
@pytest.fixture(scope="module")
def default_zoo(harness_home):
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    return build_profile(load_profile("default"))


@pytest.mark.slow
def test_paper_flags_the_patch_badnet_and_no_clean_model(default_zoo):
    for zoo_model in default_zoo:
        if zoo_model.card().dataset != "mnist":
            continue
        truth = zoo_model.truth()
        if truth.poisoned and "patch" not in zoo_model.id:
            continue
        model, clean = open_public(zoo_model)
        _seeded()
        det = build(NAME).detect(model, clean)
        index = det.extra["anomaly_index"]
        if truth.poisoned:
            assert det.score > 0.5 and det.target_labels[0] == truth.targets[0], index
        else:
            assert max(index) < 2 and det.score < 0.5, (zoo_model.id, index)


@pytest.mark.slow
def test_face_model_with_100_labels_within_budget(default_zoo):
    import time

    zoo_model = by_id(default_zoo, "faces-sunglasses-t0-v1")
    model, clean = open_public(zoo_model)
    assert clean.num_classes == 100
    _seeded()
    start = time.process_time()
    det = build(NAME).detect(model, clean)
    assert time.process_time() - start < 300  # the sandbox's budget is 600 s wall per task
    assert len(det.extra["l1_norms"]) == 100 and det.extra["per_label_batch"] == 6
    assert det.trigger.mask.shape == (55, 47) and det.trigger.pattern.shape == (55, 47, 3)
