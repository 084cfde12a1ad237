"""`make test-slow`: the zoo's acceptance checks on the default and full zoos (every recipe
present, CA within 1.5 points of the clean mean, ASR over the floor, no leak through the
public bundles; builds are cached)."""

import collections

import pytest

from harness.attacks import RECIPES
from harness.zoo.audit import AUC_LIMIT, audit_models
from harness.zoo.builder import build_profile
from harness.zoo.report import zoo_report
from harness.zoo.spec import load_profile

pytestmark = pytest.mark.slow


def _check(profile: str, per_attack: int, *, ca_gaps: bool = True) -> list:
    models = build_profile(load_profile(profile))
    report = zoo_report(profile)
    failures = [f for f in report.failures if ca_gaps or "points under" not in f]
    assert failures == [], failures  # CA within 1.5 points, ASR over floor
    counts = collections.Counter(r["attack"] for r in report.rows if r["poisoned"])
    assert set(counts) == set(RECIPES)  # every MNIST and face recipe
    assert min(counts.values()) >= per_attack
    n_bad = sum(counts.values())
    assert len(report.rows) - n_bad >= (n_bad if per_attack > 1 else 3)
    return models


def test_default_zoo_has_every_attack():
    _check("default", 1)


def test_full_zoo_has_three_of_each_and_a_counterpart_for_every_backdoored_model():
    _check("full", 3, ca_gaps=False)
    entries = load_profile("full").entries
    backdoored = collections.Counter(e.attack for e in entries if e.poisoned)
    counterparts = collections.Counter(e.attack for e in entries if e.counterpart)
    assert counterparts == backdoored


def test_full_zoo_backdoored_models_keep_clean_accuracy():
    _check("full", 3)


@pytest.fixture(scope="module")
def full_audit():
    return audit_models(_check("full", 3, ca_gaps=False))


@pytest.mark.parametrize("profile", ["default", "full"])
def test_the_audit_passes(profile):
    """Metadata alone and the data pipeline alone stay at AUC <= 0.6 (the weight signature is
    reported, not bounded: docs/ZOO.md)."""
    result = audit_models(build_profile(load_profile(profile)))
    assert result.passed, result.bounded()


def test_full_zoo_metadata_does_not_leak(full_audit):
    """Files, names, timestamps, structure and the card alone tell nothing."""
    assert max(full_audit.by_group["metadata alone"].values()) <= AUC_LIMIT, full_audit.by_group


def test_full_zoo_data_pipeline_does_not_leak(full_audit):
    """Counterparts (an attack's stamped images, true labels) look like plain clean MNIST
    models. The 12 + 12 face models are too few to bound: with their labels shuffled, the
    logistic regression's AUC exceeds 0.69 one time in ten (docs/ZOO.md)."""
    group = full_audit.by_group["mnist: counterparts vs plain clean"]
    assert max(group.values()) <= AUC_LIMIT, full_audit.by_group
