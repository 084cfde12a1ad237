"""Per-model scores of one task's validated outputs against the model's private truth."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.scoring import metrics
from harness.submission.validate import DetectOutput
from harness.zoo.records import TruthRecord
from harness.zoo.store import TestSets


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def score_detection(
    out: DetectOutput | None, truth: TruthRecord, true_masks: list[np.ndarray]
) -> dict[str, Any]:
    """Detection score (0.5 when missing), target and trigger scores when given."""
    scores: dict[str, Any] = {
        "poisoned": truth.poisoned,
        "missing": out is None,
        "score": 0.5 if out is None else out.score,
        "single_target": len(truth.targets) == 1 and not truth.all_to_all,
        "all_to_all": truth.all_to_all,
    }
    if not truth.poisoned:
        return scores
    labels = out.target_labels if out else None
    scores["target_given"] = labels is not None
    if scores["single_target"]:
        scores["target_correct"] = (
            labels is not None and bool(labels) and (labels[0] == truth.targets[0])
        )
    elif not truth.all_to_all:
        scores["target_jaccard"] = metrics.target_jaccard(labels, truth.targets)
    if out is not None and out.mask is not None and true_masks:
        scores["trigger_iou"] = max(metrics.trigger_iou_topk(out.mask, m) for m in true_masks)
    return scores


def score_repair(
    pred_clean: np.ndarray,
    pred_poisoned: np.ndarray,
    sets: TestSets,
    truth: TruthRecord,
    num_classes: int,
    before: tuple[float, float | None] | None = None,
) -> dict[str, Any]:
    """CA, ASR, the four rates on clean and poisoned data, DER and fidelity of one model.

    ``before`` is the unrepaired model's (CA, ASR) on these same sets; without it, the ones
    measured on the whole test set at build time (the truth's) are used."""
    ca_before, asr_before = before if before is not None else (truth.ca, truth.asr)
    ca = metrics.clean_accuracy(pred_clean, sets.y)
    target_of = np.asarray(truth.target_maps[0]) if len(truth.target_maps) == 1 else None
    out: dict[str, Any] = {"poisoned": truth.poisoned, "ca": ca, "ca_before": ca_before}
    out.update(metrics.clean_rates(pred_clean, sets.y, num_classes, target_of).as_dict("clean"))
    if not truth.poisoned or len(sets.y_src) == 0 or asr_before is None:
        return {k: _finite(v) if isinstance(v, float) else v for k, v in out.items()}
    asr = metrics.attack_success_rate(pred_poisoned, sets.y_tgt)
    out.update(
        asr=asr,
        asr_before=asr_before,
        der=metrics.der(asr_before, asr, ca_before, ca),
        fidelity=metrics.fidelity(asr_before, asr, ca_before, ca),
    )
    if np.all(sets.y_src >= 0):
        rates = metrics.poisoned_rates(pred_poisoned, sets.y_src, sets.y_tgt, num_classes)
        out.update(rates.as_dict("poisoned"))
    else:  # imported poisoned data labelled with targets only: CSR and CFR need the sources
        out.update(
            atr_poisoned=float(np.mean(pred_poisoned == sets.y_tgt)),
            dtr_poisoned=float(np.mean(pred_poisoned == num_classes)),
        )
    return {k: _finite(v) if isinstance(v, float) else v for k, v in out.items()}


def failed_repair_scores(truth: TruthRecord) -> dict[str, Any]:
    """A failed repair counts as no repair at all: DER 0.5 on backdoored models."""
    out: dict[str, Any] = {"poisoned": truth.poisoned}
    if truth.poisoned:
        out["der"] = 0.5
    return out


def trigger_asr(pred_stamped: np.ndarray, y: np.ndarray, target_maps: list[list[int]]) -> float:
    """ASR of a reconstructed trigger stamped on held-out clean images: the share of images
    (whose label the map moves) sent to their target; the best map of a multi-trigger model."""
    best = 0.0
    for t in target_maps:
        target = np.asarray(t)[y]
        moved = target != y
        if moved.any():
            best = max(best, metrics.attack_success_rate(pred_stamped[moved], target[moved]))
    return best


def score_filter(
    clean_scores: np.ndarray, poisoned_scores: np.ndarray, truth: TruthRecord
) -> dict[str, Any]:
    """Filter scores: false alarms on clean inputs; AUC, FAR at 1 % FRR and TPR on poisoned."""
    out: dict[str, Any] = {
        "poisoned": truth.poisoned,
        "filter_frr": metrics.flag_rate(clean_scores),
    }
    if truth.poisoned and len(poisoned_scores) and len(clean_scores):
        out.update(
            filter_auc=metrics.filter_auc(clean_scores, poisoned_scores),
            far_at_1frr=metrics.far_at_frr(clean_scores, poisoned_scores, 0.01),
            filter_tpr=metrics.flag_rate(poisoned_scores),
        )
    return {k: _finite(v) if isinstance(v, float) else v for k, v in out.items()}


def score_fuzz(
    preds: np.ndarray, seed_labels: np.ndarray, truth: TruthRecord, num_classes: int
) -> dict[str, Any]:
    """Backdoor activation rate of generated inputs (BackFuzz: An Automated Backdoor
    Detection Tool). Clean models are measured against that report's all-to-all map
    y -> y+1, their false-positive baseline."""
    maps = truth.target_maps if truth.poisoned and truth.target_maps else None
    maps = maps or [list((np.arange(num_classes) + 1) % num_classes)]
    out: dict[str, Any] = {"poisoned": truth.poisoned, "n_generated": int(len(preds))}
    if len(preds):
        rate, count = metrics.backdoor_activation(preds, seed_labels, maps)
        out.update(activation_rate=_finite(rate), activation_count=count)
    return out
