"""Aggregation of stored task scores into per-(submission, track) scores, on fabricated
records with hand-worked expectations."""

from __future__ import annotations

import math

import pytest

from harness.results import ModelFacts, TaskRecord
from harness.scoring.aggregate import Score, per_model
from harness.tracks import aggregate


def rec(
    model: str, track: str = "detect", status: str = "ok", sub: str = "s", oracle=False, **scores
):
    """A stored task; ``poisoned`` (and ``dataset``) go to the model facts, the rest are
    the task's stored scores."""
    facts = ModelFacts(poisoned=scores.pop("poisoned", None), dataset=scores.pop("dataset", None))
    return TaskRecord(
        "r",
        sub,
        "h",
        oracle,
        model,
        "mh",
        track,
        status,
        {},
        scores,
        None,
        None,
        1.0,
        "bwrap",
        facts,
    )


def values(scores: list[Score]) -> dict[tuple[str, str], float | None]:
    return {(s.track, s.metric): s.value for s in scores}


def test_detect_counts_failures_as_half_and_leaves_unknown_truth_out():
    recs = [
        rec("b1", score=0.9, poisoned=True, single_target=True, target_given=True,
            target_correct=True, trigger_iou=0.5, trigger_asr=0.8),
        rec("b2", score=0.6, poisoned=True, single_target=True, target_given=True,
            target_correct=False),
        # failed: its stale score must not count, 0.5 does
        rec("b3", status="failed", score=1.0, poisoned=True, single_target=True),
        rec("c1", score=0.2, poisoned=False),
        rec("c2", score=0.7, poisoned=False),
        rec("unknown", score=0.99, poisoned=None),
    ]  # fmt: skip
    out = aggregate(recs)  # one call: the bootstrap CI takes a while
    got = values(out)
    # labels 1,1,1,0,0 over scores .9,.6,.5,.2,.7: 4 of the 6 (positive, negative) pairs ordered
    assert got["detect", "auc"] == pytest.approx(4 / 6)
    assert got["detect", "failures"] == 1.0
    assert got["detect", "unknown_truth"] == 1.0
    assert got["detect", "tpr_at_5fpr"] == pytest.approx(1 / 3)  # only 0.9 beats both clean
    ce = -(math.log(0.9) + math.log(0.6) + math.log(0.5) + math.log(0.8) + math.log(0.3)) / 5
    assert got["detect", "ce"] == pytest.approx(ce)
    assert got["target", "target_accuracy"] == pytest.approx(1 / 3)  # b3 failed: wrong
    assert got["trigger", "trigger_iou"] == pytest.approx(0.5 / 3)  # no trigger counts 0
    assert got["trigger", "trigger_asr"] == pytest.approx(0.8 / 3)
    (auc,) = [s for s in out if s.metric == "auc"]
    assert auc.ci_low is not None and auc.ci_high is not None
    assert 0.0 <= auc.ci_low <= auc.value <= auc.ci_high <= 1.0


def test_detect_on_one_class_reports_no_auc_and_no_target_without_targets():
    recs = [rec("b1", score=0.8, poisoned=True), rec("b2", score=None, poisoned=True)]
    got = values(aggregate(recs))
    assert ("detect", "auc") not in got and ("detect", "tpr_at_5fpr") not in got
    assert got["detect", "failures"] == 1.0  # an ok task without a score is missing too
    assert got["detect", "ce"] == pytest.approx(-(math.log(0.8) + math.log(0.5)) / 2)
    assert not any(track in ("target", "trigger") for track, _ in got)
    assert aggregate([rec("u", score=0.3, poisoned=None)]) == [
        Score("s", "detect", "unknown_truth", 1.0)
    ]


def test_detect_averages_the_jaccard_of_multi_target_models():
    recs = [
        rec("m1", score=0.9, poisoned=True, target_jaccard=1.0),
        rec("m2", score=0.8, poisoned=True, target_jaccard=0.5),
    ]
    assert values(aggregate(recs))["target", "target_jaccard"] == pytest.approx(0.75)


def test_repair_means_over_backdoored_models_and_failed_clean_models_score_zero():
    recs = [
        rec("b1", "repair", poisoned=True, der=0.9, ca=0.96, asr=0.1, fidelity=0.8),
        rec("b2", "repair", poisoned=True, der=0.7, ca=0.90, asr=float("nan")),
        rec("c1", "repair", poisoned=False, ca=0.9, der=0.0),
        rec("c2", "repair", status="failed", poisoned=False, ca=0.99),
        rec("u", "repair", poisoned=None, der=0.0),
    ]
    got = values(aggregate(recs))
    assert got["repair", "der"] == pytest.approx(0.8)  # clean and unknown models left out
    assert got["repair", "ca"] == pytest.approx(0.93)
    assert got["repair", "asr"] == pytest.approx(0.1)  # NaN is skipped, not propagated
    assert got["repair", "fidelity"] == pytest.approx(0.8)
    assert ("repair", "csr_clean") not in got  # never stored: never reported
    assert got["repair", "ca_clean_models"] == pytest.approx(0.45)
    assert got["repair", "failures"] == 1.0 and got["repair", "unknown_truth"] == 1.0


def test_fuzz_failures_generate_nothing_and_clean_models_give_the_baseline():
    recs = [
        rec("b1", "fuzz", poisoned=True, activation_rate=0.6, n_generated=100),
        rec("b2", "fuzz", status="failed", poisoned=True, activation_rate=0.9),
        rec("b3", "fuzz", poisoned=True, n_generated=0),  # nothing generated
        rec("c1", "fuzz", poisoned=False, activation_rate=0.1, n_generated=50),
        rec("c2", "fuzz", status="failed", poisoned=False, activation_rate=0.8),
    ]
    got = values(aggregate(recs))
    assert got["fuzz", "activation_rate"] == pytest.approx(0.2)
    assert got["fuzz", "activation_rate_clean_models"] == pytest.approx(0.1)
    assert got["fuzz", "n_generated"] == pytest.approx(50.0)
    assert got["fuzz", "failures"] == 2.0


def test_filter_means_on_backdoored_models_and_frr_on_every_known_model():
    recs = [
        rec("b1", "filter", poisoned=True, filter_auc=1.0, far_at_1frr=0.0, filter_tpr=0.9,
            filter_frr=0.02),
        rec("b2", "filter", poisoned=True, filter_auc=0.8, far_at_1frr=0.4, filter_tpr=0.7,
            filter_frr=0.04),
        rec("c1", "filter", poisoned=False, filter_frr=0.06),
        rec("u", "filter", poisoned=None, filter_frr=0.9),
    ]  # fmt: skip
    got = values(aggregate(recs))
    assert got["filter", "filter_auc"] == pytest.approx(0.9)
    assert got["filter", "far_at_1frr"] == pytest.approx(0.2)
    assert got["filter", "filter_tpr"] == pytest.approx(0.8)
    assert got["filter", "filter_frr"] == pytest.approx(0.04)


def test_groups_are_sorted_unknown_tracks_ignored_and_oracle_carried():
    recs = [
        rec("m", "repair", sub="b", poisoned=True, der=1.0),
        rec("m", "detect", sub="b", score=0.5, poisoned=True),
        rec("m", "detect", sub="a", oracle=True, score=0.5, poisoned=True),
        rec("m", "trigger", sub="a", poisoned=True),  # no aggregator: left out
    ]
    out = aggregate(recs)
    order = list(dict.fromkeys((s.submission, s.track) for s in out))
    assert order == [("a", "detect"), ("b", "detect"), ("b", "repair")]
    assert all(s.oracle == (s.submission == "a") for s in out)


def test_score_json_shows_model_and_oracle_only_when_they_apply():
    plain = Score("s", "detect", "auc", 0.7, 0.6, 0.8)
    assert plain.as_json() == {
        "submission": "s", "track": "detect", "metric": "auc",
        "value": 0.7, "ci_low": 0.6, "ci_high": 0.8,
    }  # fmt: skip
    assert plain.as_json(per_model=True)["model"] is None
    assert Score("s", "detect", "auc", 0.7, oracle=True).as_json()["oracle"] is True


def test_per_model_keeps_finite_numbers_only():
    r = rec("m1", score=0.25, poisoned=True, n=3, name="x", bad=float("inf"), none=None)
    got = per_model([r])
    assert [(s.metric, s.value, s.model) for s in got] == [("n", 3.0, "m1"), ("score", 0.25, "m1")]


def test_seeds_are_aggregated_alone_then_averaged_with_their_spread():
    """Each replicate gets its own AUC; the score is their mean, the spread their sample
    SD, the CI the mean of their bounds; failures add up over the seeds."""
    import dataclasses

    def replicate(seed: int, backdoored_score: float, status: str = "ok"):
        recs = [
            rec("b1", score=backdoored_score, poisoned=True),
            rec("b2", score=0.9, poisoned=True),
            rec("c1", score=0.5, poisoned=False, status=status),
            rec("c2", score=0.1, poisoned=False),
        ]
        return [dataclasses.replace(r, replicate=seed) for r in recs]

    one = aggregate(replicate(0, 0.8))
    seeds = aggregate(replicate(0, 0.8) + replicate(1, 0.3, status="failed"))
    auc = {s.metric: s for s in seeds}["auc"]
    auc0 = {s.metric: s for s in one}["auc"]
    assert auc0.value == 1.0 and auc0.seeds == 1 and auc0.spread is None
    # seed 1: b1 at 0.3 ranks under c1 (0.5): 3 of 4 pairs right
    assert auc.value == pytest.approx((1.0 + 0.75) / 2) and auc.seeds == 2
    assert auc.spread == pytest.approx(math.sqrt(2) * 0.125)
    assert {s.metric: s for s in seeds}["failures"].value == 1.0
    assert "spread" in auc.as_json() and "spread" not in auc0.as_json()
    model = {(s.model, s.metric): s for s in per_model(replicate(0, 0.8) + replicate(1, 0.3))}
    assert model[("b1", "score")].value == pytest.approx(0.55)
    assert model[("b1", "score")].spread == pytest.approx(math.sqrt(2) * 0.25)
    assert model[("b2", "score")].spread == 0.0
