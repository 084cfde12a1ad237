"""The registry of reported metrics: each one's name, direction, unit and description
(``METRICS``), and ``@computes``, by which a scoring function names the metrics it computes.

Apart from the formulas (``harness.scoring.metrics``, which re-exports ``METRICS`` as
docs/METRICS.md documents it) because the registry is what the reports, the tracks and the
rubrics read to label and order numbers; it needs no numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MetricInfo:
    """A reported metric: its snake-case name, its direction and a one-line description."""

    name: str
    higher_is_better: bool
    description: str
    #: How people read it: "rate" (a share, shown as a percentage), "count" (an integer)
    #: or "score" (a number on its own scale: AUC, cross-entropy, DER, IoU).
    unit: str = "score"


_TABLE: tuple[tuple[str, bool, str], ...] = (
    ("auc", True, "detection ROC-AUC over zoo models, backdoored = positive"),
    ("auc_ci_low", True, "lower end of the bootstrap 95% CI of the detection AUC"),
    ("auc_ci_high", True, "upper end of the bootstrap 95% CI of the detection AUC"),
    ("ce", False, "mean binary cross-entropy of P(backdoored), missing = 0.5"),
    ("tpr_at_5fpr", True, "highest TPR at a threshold with FPR <= 5%"),
    ("ca", True, "clean accuracy P[f(x) = y] on C"),
    ("asr", False, "attack success rate P[f(x') = y_tgt] on P"),
    ("der", True, "defense effectiveness rating (BackdoorBench)"),
    ("fidelity", True, "TrojAI mitigation fidelity: relative ASR drop times CA kept"),
    ("atr_clean", False, "clean inputs sent to their backdoor target"),
    ("dtr_clean", False, "clean inputs rejected (label N)"),
    ("csr_clean", True, "clean inputs classified correctly"),
    ("cfr_clean", False, "clean inputs misclassified otherwise"),
    ("atr_poisoned", False, "poisoned inputs sent to the backdoor target"),
    ("dtr_poisoned", True, "poisoned inputs rejected (label N)"),
    ("csr_poisoned", True, "poisoned inputs rejected or given their source label"),
    ("cfr_poisoned", False, "poisoned inputs neither rejected nor given their source label"),
    ("ca_clean_models", True, "mean CA of repaired clean models (repair tie-break)"),
    ("target_accuracy", True, "share of backdoored models whose first predicted target is right"),
    ("target_jaccard", True, "Jaccard index of predicted and true target sets"),
    ("trigger_iou", True, "IoU of the top-k reconstructed mask pixels with the true trigger"),
    ("trigger_asr", True, "ASR of the reconstructed trigger on the backdoored model"),
    ("filter_auc", True, "input-filter ROC-AUC, poisoned inputs = positive"),
    ("far_at_1frr", False, "share of poisoned inputs not flagged at 1% FRR (STRIP)"),
    ("filter_tpr", True, "share of poisoned inputs flagged (score > 0.5)"),
    ("filter_frr", False, "share of clean inputs flagged (score > 0.5)"),
    ("activation_rate", True, "share of generated inputs f sends to t(seed label)"),
    ("activation_rate_clean_models", False, "activation rate on clean models (y -> y+1 baseline)"),
    ("activation_count", True, "number of generated inputs that activate the backdoor"),
    ("n_generated", True, "number of generated inputs within the budget (informational)"),
    ("evasion", True, "attack track: 1 - the best detector's ROC-AUC, its models vs counterparts"),
    ("evasion_ci_low", True, "lower end of the bootstrap 95% CI of the evasion"),
    ("evasion_ci_high", True, "upper end of the bootstrap 95% CI of the evasion"),
    ("ca_drop", False, "attack track: mean CA of the counterparts minus the attack's, in points"),
    ("failures", False, "number of missing, failed or invalid submission outputs"),
    ("unknown_truth", False, "models left out of the aggregates: their truth is unknown"),
)

#: Metrics that are shares (shown as percentages) and counts (shown as integers).
_RATES = frozenset(
    {
        "activation_rate",
        "activation_rate_clean_models",
        "asr",
        "atr_clean",
        "atr_poisoned",
        "ca",
        "ca_clean_models",
        "cfr_clean",
        "cfr_poisoned",
        "csr_clean",
        "csr_poisoned",
        "dtr_clean",
        "dtr_poisoned",
        "far_at_1frr",
        "filter_frr",
        "filter_tpr",
        "target_accuracy",
        "tpr_at_5fpr",
        "trigger_asr",
    }
)
_COUNTS = frozenset({"activation_count", "failures", "n_generated", "unknown_truth"})

METRICS: Registry[MetricInfo] = Registry(
    "metric",
    [
        (n, MetricInfo(n, hib, d, "rate" if n in _RATES else "count" if n in _COUNTS else "score"))
        for n, hib, d in _TABLE
    ],
)


def computes(*names: str) -> Callable[[F], F]:
    """Declare which registered metrics a function computes (sets ``fn.metrics``)."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unregistered metric name(s): {unknown}")

    def mark(fn: F) -> F:
        fn.metrics = tuple(METRICS[n] for n in names)  # type: ignore[attr-defined]
        return fn

    return mark
