"""What a detection task's record says, read the same way by every reproduction figure
about Neural Cleanse-like detectors: whether it flagged the model (and whether for a label
the attack targeted), the anomaly indices and reversed-mask norms it reported, and the
verdict one instance gets in a per-instance table.

Apart from the figures (``harness.reproduce.figures``, ``harness.reproduce.stealthy``)
because both the Neural Cleanse rows and Xiong et al.'s per-instance protocol read
detections through them.
"""

from __future__ import annotations

import numpy as np

from harness.reproduce.base import Results
from harness.results import TaskRecord
from harness.tracks.detect import DetectOutcome, DetectOutputs


def flagged(rec: TaskRecord) -> bool:
    """Flagged: the task ran, named target labels and scored the model over 0.5."""
    return (
        rec.status == "ok"
        and bool(DetectOutputs.of(rec).target_labels)
        and DetectOutcome.of(rec).score > 0.5
    )


def largest_index(rec: TaskRecord) -> str:
    """The largest anomaly index a detector reported in ``extra["anomaly_index"]``."""
    values = DetectOutputs.of(rec).extra.get("anomaly_index")
    if not isinstance(values, list) or not values:
        return "-"
    return f"{max(float(v) for v in values):.2f}"


def flagged_elsewhere(rec: TaskRecord, targets: list[int]) -> bool:
    """Flagged, but for labels the attack did not target (a model-level detection that
    did not find the backdoor: on 100-label faces some labels stand out naturally)."""
    return flagged(rec) and not set(targets) & set(DetectOutputs.of(rec).target_labels)


def verdict(rec: TaskRecord | None, targets: list[int]) -> str:
    """One instance's cell: the target's index and mask-norm ratio, flagged or evaded."""
    if rec is None:
        return "not run"
    if rec.status != "ok":
        return "failed"
    parts = []
    outputs = DetectOutputs.of(rec)
    index = outputs.extra.get("anomaly_index")
    if targets and isinstance(index, list) and len(index) > targets[0]:
        parts.append(f"index {float(index[targets[0]]):.2f}")
    ratio = norm_ratio(rec, targets)
    if ratio is not None:
        parts.append(f"mask {ratio:.2f}x")
    if not flagged(rec):
        parts.append("evaded")
    elif flagged_elsewhere(rec, targets):
        parts.append(f"flagged (label {', '.join(map(str, outputs.target_labels))})")
    else:
        parts.append("flagged")
    return ", ".join(parts)


def norm_ratio(rec: TaskRecord, targets: list[int]) -> float | None:
    """The true target's reversed-mask L1 norm over the median label's (below 1: the
    target's trigger is smaller than most, what the outlier test looks for), from the norms
    a detector reported (Neural Cleanse's ``l1_norms``, DeepInspect's ``l1``)."""
    extra = DetectOutputs.of(rec).extra
    norms = extra.get("l1_norms", extra.get("l1"))
    if not isinstance(norms, list) or not targets or len(norms) <= max(targets):
        return None
    values = np.asarray([float(v) for v in norms])
    median = float(np.median(values))
    return float(values[targets[0]]) / median if median > 0 else None


def target_norm_ratio(res: Results, recs: list[TaskRecord]) -> float | None:
    """The mean over instances of ``norm_ratio``."""
    ratios = [
        ratio
        for r in recs
        if (ratio := norm_ratio(r, res.models[r.model_id].truth().targets)) is not None
    ]
    return float(np.mean(ratios)) if ratios else None


def index_range(recs: list[TaskRecord]) -> str:
    """The range of the largest anomaly index over the instances' detections."""
    values = [float(v) for r in recs if (v := largest_index(r)) != "-"]
    if not values:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"
