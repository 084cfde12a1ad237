"""The leakage audit: public bundles must not tell clean from backdoored."""

from __future__ import annotations

import numpy as np

from harness.zoo.audit import bundle_features, cross_validated_aucs


def test_the_audit_classifiers_find_a_planted_leak_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    noise = rng.normal(size=(40, 30))
    assert max(cross_validated_aucs(noise, y, repeats=5).values()) < 0.7
    leaky = noise.copy()
    leaky[:, 7] += 3.0 * y  # e.g. a file that is bigger for backdoored models
    assert min(cross_validated_aucs(leaky, y, repeats=5).values()) > 0.9


def test_bundles_carry_no_build_time_and_share_their_layout(tiny_zoo, attack_zoo):
    feats = [bundle_features(m.public_dir) for m in [*tiny_zoo, *attack_zoo]]
    stamps = {k: v for k, v in feats[0].items() if k.startswith(("zip_time", "file_mtime"))}
    assert stamps and all(
        {k: v for k, v in f.items() if k.startswith(("zip_time", "file_mtime"))} == stamps
        for f in feats
    )
    # Models of one shape have the same features (only the values differ).
    by_structure: dict[float, set[tuple[str, ...]]] = {}
    for f in feats:
        by_structure.setdefault(f["structure"], set()).add(tuple(sorted(f)))
    assert all(len(keys) == 1 for keys in by_structure.values())
    # Clean counterparts give every model-level attack's shape both labels.
    truths = [m.truth() for m in [*tiny_zoo, *attack_zoo]]
    for shape in {f["structure"] for f in feats}:
        labels = {t.poisoned for t, f in zip(truths, feats, strict=True) if f["structure"] == shape}
        assert labels == {True, False}


def test_the_audit_also_scores_each_data_set_alone(tiny_zoo, face_zoo):
    from harness.zoo.audit import audit_models

    result = audit_models([*tiny_zoo, *face_zoo], repeats=2)
    # tiny has 3 clean and 2 backdoored MNIST models; tiny-faces has one clean face model,
    # too few to score the faces alone.
    assert set(result.by_group) == {
        "metadata alone",
        "weight statistics alone",
        "mnist models alone",
    }
    assert result.n_clean == 4 and result.n_backdoored == 4


def test_with_clean_counterparts_the_audit_says_where_the_signal_comes_from(tiny_zoo, attack_zoo):
    from harness.zoo.audit import audit_models

    result = audit_models([*tiny_zoo, *attack_zoo], repeats=2)
    # tiny-attacks holds two data-poisoning counterparts (blended, multi-trigger); the
    # model-level attacks' counterparts stay out of these comparisons.
    pairs = {"mnist: backdoored vs counterparts", "mnist: counterparts vs plain clean"}
    assert {g for g in result.by_group if ":" in g} == pairs
    assert all(0.0 <= auc <= 1.0 for pair in pairs for auc in result.by_group[pair].values())
