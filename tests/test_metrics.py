"""Every formula in harness/scoring/metrics.py against hand-worked or published numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring import metrics as m

LN2 = math.log(2.0)

# -- Table 6 of the CSAW-HackML 2020 course project report (Liao Hu, "Final Project Report",
# NYU EL-GY-9163), in percent ------------------------------------------------------------------
# (model, data set): (ATR, DTR, CSR, CFR)
TABLE6 = {
    ("sunglasses_repaired", "clean"): (0.0, 7.7240, 90.3507, 1.9251),
    ("sunglasses_repaired", "poisoned"): (0.7482, 78.8776, 81.0911, 18.9088),
    ("anonymous_1_repaired", "clean"): (0.0857, 5.5183, 93.1956, 1.2003),
    ("anonymous_1_repaired", "poisoned"): (0.2143, 75.2922, 75.3020, 24.6979),
}
CLEAN_ROWS = [k for k in TABLE6 if k[1] == "clean"]
POISONED_ROWS = [k for k in TABLE6 if k[1] == "poisoned"]


@pytest.mark.parametrize("row", CLEAN_ROWS)
def test_table6_clean_rows_sum_to_one(row: tuple[str, str]) -> None:
    atr, dtr, csr, cfr = (v / 100 for v in TABLE6[row])
    assert atr + dtr + csr + cfr == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("row", POISONED_ROWS)
def test_table6_poisoned_rows_identities(row: tuple[str, str]) -> None:
    atr, dtr, csr, cfr = (v / 100 for v in TABLE6[row])
    assert csr + cfr == pytest.approx(1.0, abs=1e-3)
    assert csr >= dtr
    assert atr <= cfr


def _counts(rates: tuple[float, ...], n: int) -> list[int]:
    return [round(r / 100 * n) for r in rates]


@pytest.mark.parametrize("row", CLEAN_ROWS)
def test_clean_rates_reproduce_table6(row: tuple[str, str]) -> None:
    """Predictions built with Table 6's counts give back Table 6's rates."""
    n, num_classes = 100_000, 4
    atr, dtr, csr, _ = _counts(TABLE6[row], n)
    cfr = n - atr - dtr - csr
    pred = np.repeat([1, 4, 0, 2], [atr, dtr, csr, cfr])  # t(0) = 1, label 4 = rejected
    rates = m.clean_rates(pred, np.zeros(n, int), num_classes, target_of=[1, 2, 3, 0])
    assert [rates.atr, rates.dtr, rates.csr, rates.cfr] == pytest.approx(
        [v / 100 for v in TABLE6[row]], abs=1e-4
    )


@pytest.mark.parametrize("row", POISONED_ROWS)
def test_poisoned_rates_reproduce_table6(row: tuple[str, str]) -> None:
    n, num_classes = 100_000, 4
    atr, dtr, csr, _ = _counts(TABLE6[row], n)
    src_hits, other = csr - dtr, n - csr - atr
    pred = np.repeat([1, 4, 0, 2], [atr, dtr, src_hits, other])
    rates = m.poisoned_rates(pred, np.zeros(n, int), np.ones(n, int), num_classes)
    assert [rates.atr, rates.dtr, rates.csr, rates.cfr] == pytest.approx(
        [v / 100 for v in TABLE6[row]], abs=1e-4
    )


# ------------------------------------------------------------------ synthetic rates
def test_clean_rates_hand_computed() -> None:
    y = [0, 0, 1, 1, 2, 2, 0, 1]
    pred = [0, 1, 3, 2, 2, 1, 2, 1]  # csr, atr, dtr, atr, csr, cfr, cfr, csr
    r = m.clean_rates(pred, y, 3, target_of=[1, 2, 0])
    assert (r.atr, r.dtr, r.csr, r.cfr) == pytest.approx((2 / 8, 1 / 8, 3 / 8, 2 / 8))
    assert r.atr + r.dtr + r.csr + r.cfr == pytest.approx(1.0)
    clean_model = m.clean_rates(pred, y, 3)
    assert (clean_model.atr, clean_model.cfr) == pytest.approx((0.0, 4 / 8))


def test_clean_rates_correct_label_equal_to_target_is_success() -> None:
    # all-to-one with target 1: a class-1 input predicted 1 is a success, not an attack
    r = m.clean_rates([1, 1], [1, 0], 2, target_of=[1, 1])
    assert (r.atr, r.csr, r.cfr) == pytest.approx((0.5, 0.5, 0.0))


def test_poisoned_rates_hand_computed() -> None:
    y_src, y_tgt = [0, 0, 1, 1, 2, 2], [1, 1, 2, 2, 0, 0]
    pred = [1, 3, 1, 0, 2, 1]  # atr, dtr, src, other, src, other
    r = m.poisoned_rates(pred, y_src, y_tgt, 3)
    assert (r.atr, r.dtr, r.csr, r.cfr) == pytest.approx((1 / 6, 1 / 6, 3 / 6, 3 / 6))
    assert r.csr + r.cfr == pytest.approx(1.0)
    assert r.csr >= r.dtr and r.atr <= r.cfr


def test_rates_sum_on_random_predictions() -> None:
    rng = np.random.default_rng(1)
    n, k = 500, 5
    y = rng.integers(0, k, n)
    c = m.clean_rates(rng.integers(0, k + 1, n), y, k, target_of=(np.arange(k) + 1) % k)
    assert c.atr + c.dtr + c.csr + c.cfr == pytest.approx(1.0)
    p = m.poisoned_rates(rng.integers(0, k + 1, n), y, (y + 1) % k, k)
    assert p.csr + p.cfr == pytest.approx(1.0)
    assert p.csr >= p.dtr and p.atr <= p.cfr


def test_rates_as_dict() -> None:
    r = m.Rates(atr=0.1, dtr=0.2, csr=0.3, cfr=0.4)
    assert r.as_dict("clean") == {
        "atr_clean": 0.1,
        "dtr_clean": 0.2,
        "csr_clean": 0.3,
        "cfr_clean": 0.4,
    }
    assert set(r.as_dict("poisoned")) <= set(m.METRICS)


def test_poisoned_rates_reject_source_equal_target() -> None:
    with pytest.raises(ValueError, match="y_src != y_tgt"):
        m.poisoned_rates([0], [1], [1], 3)


# ------------------------------------------------------------------ CA / ASR
def test_clean_accuracy_and_asr() -> None:
    assert m.clean_accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    assert m.attack_success_rate(np.array([3, 3, 1, 3]), np.array([3, 3, 3, 3])) == 0.75
    assert math.isnan(m.clean_accuracy([], []))
    assert math.isnan(m.attack_success_rate([], []))


# ------------------------------------------------------------------ DER / fidelity
def test_der_hand_worked() -> None:
    assert m.der(0.9, 0.1, 0.95, 0.90) == pytest.approx((0.8 - 0.05 + 1) / 2)  # 0.875
    assert m.der(0.9, 0.1, 0.95, 0.97) == pytest.approx(0.9)  # CA gain is not rewarded
    assert m.der(0.9, 0.95, 0.95, 0.90) == pytest.approx(0.475)  # ASR rise is not penalised
    assert m.der(1.0, 0.0, 1.0, 1.0) == 1.0
    assert m.der(0.0, 1.0, 1.0, 0.0) == 0.0


def test_der_stays_in_unit_interval() -> None:
    grid = np.linspace(0, 1, 6)
    values = [m.der(a, b, c, d) for a in grid for b in grid for c in grid for d in grid]
    assert min(values) >= 0.0 and max(values) <= 1.0


def test_der_and_fidelity_reject_non_rates() -> None:
    with pytest.raises(ValueError, match="asr_before"):
        m.der(1.5, 0.1, 0.9, 0.9)
    with pytest.raises(ValueError, match="ca_post"):
        m.fidelity(0.5, 0.1, 0.9, -0.1)
    assert math.isnan(m.der(float("nan"), 0.1, 0.9, 0.9))


def test_fidelity_hand_worked() -> None:
    assert m.fidelity(0.8, 0.2, 0.9, 0.81) == pytest.approx(0.75 * 0.9)  # 0.675
    assert m.fidelity(0.8, 0.8, 0.9, 0.9) == 0.0
    assert math.isnan(m.fidelity(0.0, 0.0, 0.9, 0.9))
    assert math.isnan(m.fidelity(0.8, 0.1, 0.0, 0.5))


# ------------------------------------------------------------------ detection
MIXED_LABELS = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1]


def test_constant_half_detector() -> None:
    scores = [0.5] * len(MIXED_LABELS)
    assert round(m.cross_entropy(MIXED_LABELS, scores), 4) == round(LN2, 4) == 0.6931
    assert m.roc_auc(MIXED_LABELS, scores) == 0.5


def test_missing_outputs_count_half() -> None:
    raw = [0.2, None, float("nan"), float("inf"), "x", 1.5, 0.9]
    filled, missing = m.fill_missing_scores(raw)
    assert filled.tolist() == [0.2, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9]
    assert missing.tolist() == [False, True, True, True, True, True, False]
    all_missing, _ = m.fill_missing_scores([None] * len(MIXED_LABELS))
    assert m.cross_entropy(MIXED_LABELS, all_missing) == pytest.approx(LN2)


def test_perfect_detector() -> None:
    labels = np.array(MIXED_LABELS)
    scores = np.where(labels == 1, 0.9, 0.1)
    assert m.roc_auc(labels, scores) == 1.0
    assert m.tpr_at_fpr(labels, scores) == 1.0
    low, high = m.bootstrap_auc_ci(labels, scores, n_boot=200)
    assert 0.0 <= low <= high <= 1.0
    assert (low, high) == (1.0, 1.0)


def test_roc_auc_hand_worked_and_single_class() -> None:
    # positives 0.8, 0.4; negatives 0.6, 0.2: 3 of 4 pairs ordered
    assert m.roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.6, 0.2]) == pytest.approx(0.75)
    assert math.isnan(m.roc_auc([1, 1], [0.3, 0.7]))


def test_bootstrap_ci_properties() -> None:
    rng = np.random.default_rng(7)
    labels = np.r_[np.zeros(30), np.ones(30)]
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, 60), 0, 1)
    auc = m.roc_auc(labels, scores)
    low, high = m.bootstrap_auc_ci(labels, scores, n_boot=100, seed=3)
    assert 0.0 <= low < auc < high <= 1.0
    assert m.bootstrap_auc_ci(labels, scores, n_boot=100, seed=3) == (low, high)
    previous = (low, high)
    for alpha in (0.2, 0.5, 0.8, 0.98):  # central intervals shrink and stay ordered
        lo, hi = m.bootstrap_auc_ci(labels, scores, n_boot=100, alpha=alpha, seed=3)
        assert previous[0] <= lo <= hi <= previous[1]
        previous = (lo, hi)
    assert all(math.isnan(v) for v in m.bootstrap_auc_ci([0, 0, 0], [0.1, 0.2, 0.3]))


def test_cross_entropy_hand_worked_and_clipped() -> None:
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert m.cross_entropy([1, 0], [0.8, 0.4]) == pytest.approx(expected)
    assert m.cross_entropy([1], [0.0]) == pytest.approx(-math.log(1e-12))
    assert m.cross_entropy([0], [1.0]) == pytest.approx(-math.log(1e-12), rel=1e-3)


def test_tpr_at_fpr_hand_worked() -> None:
    labels = [0] * 20 + [1] * 4
    scores = [0.1] * 19 + [0.8] + [0.9, 0.85, 0.7, 0.05]
    assert m.tpr_at_fpr(labels, scores, max_fpr=0.05) == pytest.approx(0.75)  # FPR exactly 5%
    assert m.tpr_at_fpr(labels, scores, max_fpr=0.0) == pytest.approx(0.5)
    assert m.tpr_at_fpr(labels, scores, max_fpr=1.0) == 1.0


# ------------------------------------------------------------------ target / trigger
def test_target_accuracy() -> None:
    predicted = [[3, 1], [2], None, [], [5]]
    assert m.target_accuracy(predicted, [3, 1, 0, 0, 5]) == pytest.approx(0.4)
    assert m.target_accuracy([[1, 3]], [3]) == 0.0  # only the first guess counts
    assert math.isnan(m.target_accuracy([], []))


def test_target_jaccard() -> None:
    assert m.target_jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert m.target_jaccard([4], [4]) == 1.0
    assert m.target_jaccard([], []) == 1.0
    assert m.target_jaccard(None, [1]) == 0.0


def test_trigger_iou_topk() -> None:
    true = np.zeros((4, 4))
    true[:2, :2] = 1  # k = 4
    pred = np.zeros((4, 4))
    pred[0, 0], pred[0, 1], pred[1, 0], pred[3, 3] = 0.9, 0.8, 0.7, 0.95
    assert m.trigger_iou_topk(pred, true) == pytest.approx(3 / 5)
    assert m.trigger_iou_topk(true * 0.3 + 0.01, true) == 1.0
    assert m.trigger_iou_topk(pred[..., None], true) == pytest.approx(3 / 5)  # HxWx1 accepted
    assert math.isnan(m.trigger_iou_topk(pred, np.zeros((4, 4))))


# ------------------------------------------------------------------ filter / fuzz
def test_filter_auc() -> None:
    # 0.25 beats two of three clean scores, 0.9 beats all three: 5/6
    assert m.filter_auc([0.1, 0.2, 0.3], [0.25, 0.9]) == pytest.approx(5 / 6)
    assert math.isnan(m.filter_auc([0.1, 0.2], []))


def test_far_at_frr() -> None:
    clean = np.arange(100) / 100  # 0.00 .. 0.99
    poisoned = [0.5, 0.97, 0.99, 1.0]
    assert m.far_at_frr(clean, poisoned, frr=0.01) == pytest.approx(0.5)  # threshold 0.9801
    assert m.far_at_frr(clean, poisoned, frr=0.10) == pytest.approx(0.25)  # threshold 0.891
    # flagged means strictly above the threshold
    assert m.far_at_frr([0.5] * 10, [0.5, 0.6]) == pytest.approx(0.5)
    assert math.isnan(m.far_at_frr([], [0.5]))


def test_backdoor_activation_counts_any_map_and_skips_unmovable_seeds() -> None:
    to_zero = [0, 0, 0, 0]  # single target 0: seeds of class 0 cannot activate it
    to_two = [2, 2, 2, 2]
    preds = [0, 0, 1, 2, 0]
    seeds = [0, 1, 2, 3, 3]
    rate, count = m.backdoor_activation(preds, seeds, [to_zero])
    assert (rate, count) == (pytest.approx(0.5), 2)  # seed 0 left out: 2 of 4
    rate, count = m.backdoor_activation(preds, seeds, [to_zero, to_two])
    assert (rate, count) == (pytest.approx(0.6), 3)  # 3 -> 2 counts too; seed 0 movable by t=2
    assert math.isnan(m.backdoor_activation([0], [0], [to_zero])[0])
    with pytest.raises(ValueError, match="target_maps"):
        m.backdoor_activation([0], [0], [])


def test_trigger_asr_takes_the_best_map_over_moved_images() -> None:
    from harness.tracks.detect import trigger_asr

    y = np.array([0, 1, 2, 3])
    pred = np.array([0, 0, 0, 1])
    assert trigger_asr(pred, y, [[0, 0, 0, 0]]) == pytest.approx(2 / 3)
    assert trigger_asr(pred, y, [[1, 2, 3, 0], [0, 0, 0, 0]]) == pytest.approx(2 / 3)
    assert trigger_asr(pred, y, [[0, 1, 2, 3]]) == 0.0  # nothing moved


def test_flag_rate() -> None:
    assert m.flag_rate([0.2, 0.6, 0.9, 0.5]) == pytest.approx(0.5)
    assert math.isnan(m.flag_rate([]))


def test_activation_rate() -> None:
    target_of = [1, 2, 0]
    seeds = [0, 0, 1, 2, 2]
    preds = [1, 0, 2, 0, 1]  # hit, miss, hit, hit, miss
    assert m.activation_rate(preds, seeds, target_of) == pytest.approx(0.6)
    assert math.isnan(m.activation_rate([], [], target_of))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: m.clean_accuracy([0, 1], [0]), "length mismatch"),
        (lambda: m.clean_accuracy([[0, 1]], [[0, 1]]), "1-D"),
        (lambda: m.clean_rates([0, 5], [0, 1], 3), r"pred labels must lie in \[0, 3\]"),
        (lambda: m.clean_rates([0], [0], 3, target_of=[1, 2]), "length num_classes"),
        (lambda: m.poisoned_rates([0.5], [0], [1], 3), "integer labels"),
        (lambda: m.roc_auc([0, 2], [0.1, 0.2]), r"labels must lie in \[0, 1\]"),
        (lambda: m.roc_auc([0, 1], [0.1, float("nan")]), "fill_missing_scores"),
        (lambda: m.bootstrap_auc_ci([0, 1], [0.1, 0.2], alpha=1.5), "alpha"),
        (lambda: m.target_accuracy([[1]], [1, 2]), "length mismatch"),
        (lambda: m.trigger_iou_topk(np.zeros((3, 3)), np.zeros((4, 4))), "shapes differ"),
        (lambda: m.far_at_frr([0.1], [0.2], frr=2.0), "frr"),
        (lambda: m.activation_rate([1], [3], [1, 2, 0]), "seed_labels"),
        (lambda: m.fill_missing_scores(np.zeros((2, 2))), "1-D"),
    ],
)
def test_bad_input_raises_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------ registry
REQUIRED = [
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "ce",
    "tpr_at_5fpr",
    "ca",
    "asr",
    "der",
    "fidelity",
    "atr_clean",
    "dtr_clean",
    "csr_clean",
    "cfr_clean",
    "atr_poisoned",
    "dtr_poisoned",
    "csr_poisoned",
    "cfr_poisoned",
    "ca_clean_models",
    "target_accuracy",
    "target_jaccard",
    "trigger_iou",
    "trigger_asr",
    "filter_auc",
    "far_at_1frr",
    "activation_rate",
    "n_generated",
    "failures",
]


def test_registry_covers_required_metrics_with_directions() -> None:
    assert set(REQUIRED) <= set(m.METRICS)
    for name, info in m.METRICS.items():
        assert info.name == name
        assert isinstance(info.higher_is_better, bool)
        assert info.description
    for name in ("ce", "far_at_1frr", "failures"):
        assert m.METRICS[name].higher_is_better is False
    for name in ("auc", "der", "ca", "csr_poisoned"):
        assert m.METRICS[name].higher_is_better is True


def test_metric_functions_declare_their_metrics() -> None:
    functions = [
        m.clean_accuracy, m.attack_success_rate, m.clean_rates, m.poisoned_rates, m.der,
        m.fidelity, m.fill_missing_scores, m.roc_auc, m.bootstrap_auc_ci, m.cross_entropy,
        m.tpr_at_fpr, m.target_accuracy, m.target_jaccard, m.trigger_iou_topk, m.filter_auc,
        m.far_at_frr, m.activation_rate, m.backdoor_activation, m.flag_rate, m.evasion,
        m.ca_drop,
    ]  # fmt: skip
    declared = {info.name for fn in functions for info in fn.metrics}
    assert declared == set(m.METRICS) - {"n_generated", "unknown_truth"}  # plain counts
    with pytest.raises(ValueError, match="unregistered"):
        m.computes("no_such_metric")


def test_the_rank_auc_equals_the_area_under_the_roc_curve_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(4, 40))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), 1)  # many ties
        assert m.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
