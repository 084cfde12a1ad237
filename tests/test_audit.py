"""The leakage audit: public bundles must not tell clean from backdoored."""

from __future__ import annotations

import numpy as np

from harness.zoo.audit import cross_validated_aucs
from harness.zoo.inbox_features import model_features


def test_the_audit_classifiers_find_a_planted_leak_and_not_noise():
    """Two repeats keep this a unit test (6 s). Over data seeds 0-7 the noise scored
    0.46-0.71 (seed 0: 0.62) and the planted leak 0.86-0.97 (seed 0: 0.95)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    noise = rng.normal(size=(40, 30))
    assert max(cross_validated_aucs(noise, y, repeats=2).values()) < 0.75
    leaky = noise.copy()
    leaky[:, 7] += 4.0 * y  # e.g. a file that is bigger for backdoored models
    assert min(cross_validated_aucs(leaky, y, repeats=2).values()) > 0.85


#: Features that differ from model to model by design: the per-run anonymous id and the
#: clean split's pixel statistics (its images are drawn from the model's seed).
PER_MODEL = ("meta:card.json.id", "meta:clean_val:x_")


def test_models_of_one_shape_show_a_submission_the_same_bytes(tiny_zoo, attack_zoo):
    models = [*tiny_zoo, *attack_zoo]
    feats = [model_features(m) for m in models]
    meta = [
        {k: v for k, v in f.items() if k.startswith("meta:") and not k.startswith(PER_MODEL)}
        for f in feats
    ]
    assert all("meta:model.keras/metadata.json.date_saved" in m for m in meta)
    shape = [(m["meta:model.keras/config.json:bytes"], m["meta:h5:params"]) for m in meta]
    by_shape: dict[tuple[float, float], list[dict[str, float]]] = {}
    for key, m in zip(shape, meta, strict=True):
        by_shape.setdefault(key, []).append(m)
    for group in by_shape.values():  # same files, sizes, times, fields and headers
        assert all(m == group[0] for m in group), [
            k for k in group[0] if any(m.get(k) != group[0][k] for m in group)
        ]
    # Every repair or filter task of a data set gets the same number of inputs.
    assert len({m["meta:repair:eval_x.npy:shape[0]"] for m in meta}) == 1
    # Clean counterparts give every model-level attack's shape both labels.
    truths = [m.truth() for m in models]
    for key in by_shape:
        labels = {t.poisoned for t, k in zip(truths, shape, strict=True) if k == key}
        assert labels == {True, False}


def test_the_audit_also_scores_each_data_set_alone(tiny_zoo, face_zoo):
    from harness.zoo.audit import audit_models

    result = audit_models([*tiny_zoo, *face_zoo], repeats=2)
    # tiny has 3 clean and 2 backdoored MNIST models; tiny-faces has one clean face model,
    # too few to score the faces alone.
    assert set(result.by_group) == {
        "metadata alone",
        "weight signature alone",
        "mnist models alone",
    }
    assert result.n_clean == 4 and result.n_backdoored == 4
    assert set(result.bounded()) == {"metadata alone"}
    assert result.passed == (max(result.by_group["metadata alone"].values()) <= 0.6)


def test_with_clean_counterparts_the_audit_says_where_the_signal_comes_from(tiny_zoo, attack_zoo):
    from harness.zoo.audit import audit_models

    result = audit_models([*tiny_zoo, *attack_zoo], repeats=2)
    # tiny-attacks holds two data-poisoning counterparts (blended, multi-trigger); the
    # model-level attacks' counterparts stay out of these comparisons.
    pairs = {"mnist: backdoored vs counterparts", "mnist: counterparts vs plain clean"}
    assert {g for g in result.by_group if ":" in g} == pairs
    assert all(0.0 <= auc <= 1.0 for pair in pairs for auc in result.by_group[pair].values())
    assert set(result.bounded()) == {"metadata alone", "mnist: counterparts vs plain clean"}


def test_a_bounded_auc_over_the_limit_fails_only_when_chance_rarely_reaches_it():
    from harness.zoo.audit import AuditResult, Chance

    def result(chance):
        groups = {"metadata alone": {"logistic_regression": 0.63, "random_forest": 0.45}}
        return AuditResult({}, 20, 20, 5, groups, chance)

    assert result({}).over_limit() == [("metadata alone", "logistic_regression")]
    assert not result({}).passed  # over the limit and untested
    noise = {"metadata alone": {"logistic_regression": Chance(0.2, 0.68, 39)}}
    assert result(noise).passed
    leak = {"metadata alone": {"logistic_regression": Chance(0.025, 0.58, 39)}}
    assert not result(leak).passed


def test_the_permutation_test_tells_a_planted_leak_from_noise():
    """19 shuffles of one repeat keep it a unit test. Over data seeds 0-7 the noise scored
    AUC 0.34-0.75 at p 0.10-0.90 (seed 1: 0.58, p 0.25); the planted leak 0.72-0.95, each
    at p = 1/20, above every shuffle's 95th percentile (seed 1: 0.91 against 0.72)."""
    from harness.zoo.audit import chance_of

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    strata = np.repeat(["a", "b", "a", "b"], 10)
    noise = rng.normal(size=(40, 30))
    auc = cross_validated_aucs(noise, y, repeats=1, only="logistic_regression")
    test = chance_of(
        noise, y, strata, "logistic_regression", auc["logistic_regression"], repeats=1, shuffles=19
    )
    assert test.shuffles == 19 and test.p_value > 0.1
    leaky = noise.copy()
    leaky[:, 3] += 3.0 * y
    auc = cross_validated_aucs(leaky, y, repeats=1, only="logistic_regression")
    assert set(auc) == {"logistic_regression"}
    test = chance_of(
        leaky, y, strata, "logistic_regression", auc["logistic_regression"], repeats=1, shuffles=19
    )
    assert test.p_value == 1 / 20 and test.q95 < auc["logistic_regression"]
