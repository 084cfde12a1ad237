"""The filter track: ``fit_filter(model, clean)``, then ``flag(x)`` -> P(triggered) per input.

The worker scores the same shuffled clean and poisoned test images as the repair track.
Scored per model: the share of clean inputs flagged (false rejections) and, on backdoored
models, the AUC between clean and poisoned inputs, the false-acceptance rate at a 1 %
false-rejection rate (as STRIP reports it: Gao et al., "STRIP: A Defence Against Trojan
Attacks on Deep Neural Networks") and the share of poisoned inputs flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api import Track
from harness.sandbox.readback import Inside
from harness.scoring import metrics as formulas
from harness.submission.validate import OutputError, load_array, reply_file
from harness.tracks.base import (
    Heat,
    Metric,
    Outcome,
    RunOptions,
    SameSeed,
    Scored,
    Table,
    TaskInputs,
    TrackKind,
    batched,
    finite,
    mixed_test_inputs,
    save_array,
)
from harness.zoo.records import TruthRecord

if TYPE_CHECKING:
    from harness.zoo.predict import ModelPredictor
    from harness.zoo.store import ZooModel


def input_scores(path: Path | Inside, expected: int) -> np.ndarray:
    """Validate filter scores: one finite P(triggered) per input."""
    scores = load_array(path, "flag() scores").astype(np.float64)
    if scores.shape != (expected,):
        raise OutputError(f"flag() returned shape {scores.shape}; expected ({expected},)")
    if not np.isfinite(scores).all():
        raise OutputError("flag() returned NaN or inf")
    return scores


@dataclass(frozen=True)
class FilterOutcome(Outcome):
    """A filter's per-model scores (the poisoned side on backdoored models only)."""

    filter_frr: float | None = None
    filter_auc: float | None = None
    far_at_1frr: float | None = None
    filter_tpr: float | None = None


def score_filter(
    clean_scores: np.ndarray, poisoned_scores: np.ndarray, truth: TruthRecord
) -> FilterOutcome:
    """Filter scores: false alarms on clean inputs; AUC, FAR at 1 % FRR and TPR on poisoned."""
    out = FilterOutcome(filter_frr=finite(formulas.flag_rate(clean_scores)))
    if truth.poisoned and len(poisoned_scores) and len(clean_scores):
        out = replace(
            out,
            filter_auc=finite(formulas.filter_auc(clean_scores, poisoned_scores)),
            far_at_1frr=finite(formulas.far_at_frr(clean_scores, poisoned_scores, 0.01)),
            filter_tpr=finite(formulas.flag_rate(poisoned_scores)),
        )
    return out


class FilterTrack(TrackKind):
    name = Track.FILTER.value
    answers = (Track.FILTER,)
    methods = ("fit_filter", "flag")
    shows_poisoned_inputs = True
    table = Table(
        "Input filtering",
        ("filter_auc", "far_at_1frr", "filter_tpr", "filter_frr", "failures"),
        ("filter_auc", "far_at_1frr"),
    )
    same_seed = SameSeed("scores", ("filter_auc", "filter_frr", "far_at_1frr"))
    matrix = (Heat("filter_auc", chance=0.5),)
    outcome = FilterOutcome
    #: AUC, FAR at 1 % FRR and TPR over the backdoored models; the false rejection rate
    #: over every model of known truth.
    metrics = (
        Metric("filter_auc"),
        Metric("far_at_1frr"),
        Metric("filter_tpr"),
        Metric("filter_frr", over="known"),
    )

    def prepare(self, model: ZooModel, seed: int, options: RunOptions) -> TaskInputs:
        return mixed_test_inputs(model, seed)

    @staticmethod
    def call(
        instance: Any, model: Any, clean: Any, req: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        instance.fit_filter(model, clean)
        x = np.load(req["eval_x"], allow_pickle=False)
        return {"scores": save_array(out, "scores", batched(instance.flag, x))}

    def score(
        self,
        result: dict[str, Any],
        out_dir: Path,
        model: ZooModel,
        inputs: TaskInputs,
        predictor: ModelPredictor,
    ) -> Scored:
        evs = inputs.need_eval_set()
        flags = input_scores(reply_file(result, "scores", out_dir), len(evs.x))
        clean, poisoned = evs.split(flags)
        outcome = score_filter(clean, poisoned, model.truth())
        return {"n_scores": int(len(flags)), "flagged": int(np.sum(flags > 0.5))}, outcome


FILTER = FilterTrack()
