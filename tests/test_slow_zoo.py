"""`make test-slow`: issue 3's acceptance on the default and full zoos (builds are cached)."""

import collections

import pytest

from harness.attacks import RECIPES
from harness.zoo.audit import AUC_LIMIT, audit_models
from harness.zoo.builder import build_profile
from harness.zoo.report import zoo_report
from harness.zoo.spec import load_profile

pytestmark = pytest.mark.slow


def _check(profile: str, per_attack: int) -> list:
    models = build_profile(load_profile(profile))
    report = zoo_report(profile)
    assert report.failures == [], report.failures  # CA within 1.5 points, ASR over floor
    counts = collections.Counter(r["attack"] for r in report.rows if r["poisoned"])
    assert set(counts) == set(RECIPES)  # every MNIST and face recipe
    assert min(counts.values()) >= per_attack
    n_bad = sum(counts.values())
    assert len(report.rows) - n_bad >= (n_bad if per_attack > 1 else 3)
    return models


def test_default_zoo_has_every_attack():
    _check("default", 1)


def test_full_zoo_has_three_of_each():
    _check("full", 3)


@pytest.mark.xfail(
    strict=True,
    reason="issue 3 open: with training settings drawn alike, the attacks' own weight "
    "signatures remain (audit 0.77 / 0.63; pixel all-to-all, blended, multi-trigger 0.9+ "
    "alone); hiding them needs evasive recipes, a decision pending (docs/ZOO.md)",
)
def test_full_zoo_does_not_leak():
    models = _check("full", 3)
    result = audit_models(models)
    assert result.worst <= AUC_LIMIT, result.aucs


def test_full_zoo_metadata_does_not_leak():
    """Files, names, timestamps, structure and the card alone tell nothing."""
    result = audit_models(_check("full", 3), repeats=5)
    assert max(result.by_group["metadata"].values()) <= AUC_LIMIT, result.by_group
