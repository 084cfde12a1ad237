"""The attack track's table: per hand-in, how well it evades the defenses.

Each detector's ROC-AUC separates the hand-in's backdoored models (positive) from their
clean counterparts, from the scores its detect task stored for them. Evasion is 1 - the
best of those AUCs (``harness.scoring.metrics.evasion``, with its bootstrap CI over the
models): 0 when some detector separates them perfectly, about 0.5 when none does better
than chance. Input filters (STRIP) are reported beside it: their ROC-AUC separates the
triggered test inputs from the clean ones, averaged over the hand-in's models.

An entry is valid only when its trojan works and costs little: mean ASR >= ``MIN_ASR`` and
the counterparts' mean CA at most ``MAX_CA_DROP`` points above its own (the Trojan
Detection Challenge 2022 asked the same of its evasive trojans); and every instance gave a
poisoned set within the limits (its triggers within the track's budget among them,
``harness.tracks.attack``). The ASR that counts is the backdoor's: the model's ASR above
its clean counterpart's on the same stamped test images. A trigger the counterpart obeys
as well (one that paints the target class over the image) works without any backdoor, so
``MIN_ASR`` applies to the difference. Otherwise the entry is listed as invalid with the
reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.api import Track
from harness.results import AttackInstance, ResultsStore, TaskRecord
from harness.scoring.metrics import ca_drop, evasion, fill_missing_scores, roc_auc
from harness.tracks.detect import DetectOutcome
from harness.tracks.filter import FilterOutcome

MIN_ASR = 0.97
MAX_CA_DROP = 1.0  # points


@dataclass(frozen=True)
class Validity:
    """When an entry counts: its mean ASR at least ``min_asr``, its mean CA at most
    ``max_ca_drop`` points under its counterparts'."""

    min_asr: float = MIN_ASR
    max_ca_drop: float = MAX_CA_DROP


#: The track's rule.
VALID = Validity()


@dataclass(frozen=True)
class AttackRow:
    """One hand-in's line in the attack table."""

    attack: str
    asked: int  # instances asked for
    built: int  # instances trained into a model and a counterpart
    asr: float | None = None
    ca: float | None = None
    ca_drop: float | None = None  # points
    auc: dict[str, float] = field(default_factory=dict)  # detector -> AUC
    filter_auc: dict[str, float] = field(default_factory=dict)  # filter -> mean input AUC
    evasion: float | None = None
    ci: tuple[float, float] | None = None
    valid: bool = False
    reason: str | None = None
    #: the counterparts' mean ASR on the same stamped images (what the trigger alone does)
    counterpart_asr: float | None = None

    @property
    def backdoor_asr(self) -> float | None:
        """The ASR the backdoor adds: the models' mean ASR above their counterparts'."""
        if self.asr is None or self.counterpart_asr is None:
            return None
        return self.asr - self.counterpart_asr

    @property
    def best_detector(self) -> str | None:
        return max(self.auc, key=lambda k: self.auc[k]) if self.auc else None


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(got)) if got else None


def _validity(built: list[AttackInstance], broken: list[AttackInstance], asr: float | None,
              cp_asr: float | None, drop: float | None, rule: Validity) -> str | None:  # fmt: skip
    """Why an entry is invalid, or None when it is valid (``cp_asr``: the counterparts' mean
    ASR, None when one was not measured)."""
    if broken:
        first = broken[0]
        return f"instance {first.instance} {first.status}: {first.error}"
    if not built:
        return "no instance was built"
    if asr is None or asr < rule.min_asr:
        return f"mean ASR {asr if asr is not None else float('nan'):.3f} < {rule.min_asr}"
    if cp_asr is None:
        return (
            "the counterparts' ASR was not measured (instances stored by an older harness): "
            "run `harness attack run` again"
        )
    if asr - cp_asr < rule.min_asr:
        return (
            f"the clean counterparts obey the trigger too (ASR {asr:.3f}, counterparts "
            f"{cp_asr:.3f}): the ASR above theirs, {asr - cp_asr:.3f}, is < {rule.min_asr}; "
            "the backdoor must be in the model, not in the trigger"
        )
    if drop is not None and drop > rule.max_ca_drop:
        return f"mean CA {drop:.2f} points under the counterparts' (at most {rule.max_ca_drop:g})"
    return None


def attack_rows(
    instances: list[AttackInstance],
    records: list[TaskRecord],
    asked: int | None = None,
    rule: Validity = VALID,
) -> list[AttackRow]:
    """The table of a run: one row per hand-in, valid ones first, by evasion."""
    detect, filters = Track.DETECT.value, Track.FILTER.value
    scores: dict[str, dict[str, float | None]] = {}  # detector -> model id -> score
    input_aucs: dict[str, dict[str, float | None]] = {}
    for r in records:
        if r.replicate != 0:
            continue
        if r.track == detect:
            # A detection that ran always stored its score; a failed one has none (0.5).
            value = DetectOutcome.of(r).score if r.status == "ok" else None
            scores.setdefault(r.submission, {})[r.model_id] = value
        elif r.track == filters:
            value = FilterOutcome.of(r).filter_auc if r.status == "ok" else None
            input_aucs.setdefault(r.submission, {})[r.model_id] = value
    rows = []
    for attack in sorted({i.attack for i in instances}):
        mine = [i for i in instances if i.attack == attack]
        built = [i for i in mine if i.status == "ok" and i.model_id and i.counterpart_id]
        broken = [i for i in mine if i.status != "ok"]
        asr = _mean([i.asr for i in built])
        measured = all(i.counterpart_asr is not None for i in built)
        cp_asr = _mean([i.counterpart_asr for i in built]) if measured else None
        ca = _mean([i.ca for i in built])
        pairs = [
            (i.ca, i.counterpart_ca)
            for i in built
            if i.ca is not None and i.counterpart_ca is not None
        ]
        drop = ca_drop([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
        labels = [1] * len(built) + [0] * len(built)
        ids = [str(i.model_id) for i in built] + [str(i.counterpart_id) for i in built]
        per_detector = {
            name: [got.get(m) for m in ids]
            for name, got in sorted(scores.items())
            if all(m in got for m in ids)
        }
        auc = {
            name: roc_auc(labels, fill_missing_scores(s)[0]) for name, s in per_detector.items()
        } if built else {}  # fmt: skip
        point, low, high = (
            evasion(labels, list(per_detector.values())) if per_detector and built else (None,) * 3
        )
        filter_auc = {
            name: v
            for name, got in sorted(input_aucs.items())
            if (v := _mean([got.get(i.model_id) for i in built if i.model_id])) is not None
        }
        reason = _validity(built, broken, asr, cp_asr, drop, rule)
        rows.append(
            AttackRow(
                attack,
                asked if asked is not None else len(mine),
                len(built),
                asr,
                ca,
                drop,
                {k: v for k, v in auc.items() if np.isfinite(v)},
                filter_auc,
                point if point is None or np.isfinite(point) else None,
                None if low is None or high is None or not np.isfinite(low) else (low, high),
                reason is None,
                reason,
                cp_asr,
            )
        )
    return sorted(rows, key=lambda r: (not r.valid, -(r.evasion or 0.0), r.attack))


def run_rows(results: ResultsStore, run_id: str, rule: Validity = VALID) -> list[AttackRow]:
    """The attack table of a stored run."""
    return attack_rows(results.attack_instances(run_id), results.tasks(run_id), rule=rule)
