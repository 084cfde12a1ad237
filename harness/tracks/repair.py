"""The repair track: ``repair(model, clean)``, then ``predict(x)`` on held-out inputs.

The worker answers a shuffled mix of clean and poisoned test images (``EvalSet``); label
N means "rejected as backdoored". Scored per model: CA and ASR after repair, the CSAW
course project's ATR / DTR / CSR / CFR on clean and on poisoned inputs, DER (as
BackdoorBench defines it) and fidelity against the zoo model's own CA and ASR on the same
inputs (docs/METRICS.md has every formula). The GoodNet export (``harness export
goodnet``) is this track's call followed by saving the submission's ``export()`` model:
``EXPORT`` below.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    from harness.zoo.evalset import EvalSet
    from harness.zoo.predict import ModelPredictor
    from harness.zoo.store import TestSets, ZooModel

#: The metrics averaged over the backdoored models.
REPAIR_MEANS = (
    "der",
    "ca",
    "asr",
    "fidelity",
    "atr_clean",
    "dtr_clean",
    "csr_clean",
    "cfr_clean",
    "atr_poisoned",
    "dtr_poisoned",
    "csr_poisoned",
    "cfr_poisoned",
)

#: The worker call that repairs, answers the evaluation inputs and saves the submission's
#: ``export()`` model (a GoodNet a plain grader can load); not a scored track.
EXPORT = "export"


def label_predictions(path: Path | Inside, expected: int, num_classes: int) -> np.ndarray:
    """Validate repair predictions: one integer label per input, in 0..N (N = rejected)."""
    preds = load_array(path, "predictions")
    if preds.shape != (expected,):
        raise OutputError(
            f"predict() returned shape {preds.shape}; expected ({expected},): one label per input"
        )
    if preds.dtype.kind == "f":
        if not np.isfinite(preds).all() or not np.all(preds == np.round(preds)):
            raise OutputError("predict() returned non-integer labels; return argmax labels")
    elif preds.dtype.kind not in "iu":
        raise OutputError(f"predict() returned dtype {preds.dtype}; return integer labels")
    preds = preds.astype(np.int64)
    if preds.size and preds.max() == num_classes + 1:
        raise OutputError(
            f"predict() answered {num_classes + 1} (N+1): the contract uses "
            f"N = {num_classes} for rejected inputs; subtract one"
        )
    if preds.size and (preds.min() < 0 or preds.max() > num_classes):
        raise OutputError(f"predict() labels outside 0..{num_classes} (N = rejected)")
    return preds


@dataclass(frozen=True)
class RepairOutcome(Outcome):
    """A repair's per-model scores (the ASR side on backdoored models only)."""

    ca: float | None = None
    ca_before: float | None = None
    atr_clean: float | None = None
    dtr_clean: float | None = None
    csr_clean: float | None = None
    cfr_clean: float | None = None
    asr: float | None = None
    asr_before: float | None = None
    der: float | None = None
    fidelity: float | None = None
    atr_poisoned: float | None = None
    dtr_poisoned: float | None = None
    csr_poisoned: float | None = None
    cfr_poisoned: float | None = None


def score_repair(
    pred_clean: np.ndarray,
    pred_poisoned: np.ndarray,
    sets: TestSets,
    truth: TruthRecord,
    num_classes: int,
    before: tuple[float, float | None] | None = None,
) -> RepairOutcome:
    """CA, ASR, the four rates on clean and poisoned data, DER and fidelity of one model.

    ``before`` is the unrepaired model's (CA, ASR) on these same sets; without it, the ones
    measured on the whole test set at build time (the truth's) are used."""
    ca_before, asr_before = before if before is not None else (truth.ca, truth.asr)
    ca = formulas.clean_accuracy(pred_clean, sets.y)
    target_of = np.asarray(truth.target_maps[0]) if len(truth.target_maps) == 1 else None
    out: dict[str, Any] = {"ca": ca, "ca_before": ca_before}
    out.update(formulas.clean_rates(pred_clean, sets.y, num_classes, target_of).as_dict("clean"))
    if truth.poisoned and len(sets.y_src) > 0 and asr_before is not None:
        asr = formulas.attack_success_rate(pred_poisoned, sets.y_tgt)
        out.update(
            asr=asr,
            asr_before=asr_before,
            der=formulas.der(asr_before, asr, ca_before, ca),
            fidelity=formulas.fidelity(asr_before, asr, ca_before, ca),
        )
        if np.all(sets.y_src >= 0):
            rates = formulas.poisoned_rates(pred_poisoned, sets.y_src, sets.y_tgt, num_classes)
            out.update(rates.as_dict("poisoned"))
        else:  # imported poisoned data labelled with targets only: CSR and CFR need sources
            out.update(
                atr_poisoned=float(np.mean(pred_poisoned == sets.y_tgt)),
                dtr_poisoned=float(np.mean(pred_poisoned == num_classes)),
            )
    return RepairOutcome(**{k: finite(v) for k, v in out.items()})


def unrepaired(
    model: ZooModel, evs: EvalSet, sets: TestSets, predictor: ModelPredictor
) -> tuple[float, float | None]:
    """The zoo model's own (CA, ASR) on the inputs a repair task handed out (``evs.x``,
    renewed and quantised for the task): the "before" of DER, measured on exactly what
    the repair answered."""
    return evs.rates(predictor.labels(model, evs.x), sets)


def export_call(
    instance: Any, model: Any, clean: Any, req: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Repair, answer the evaluation inputs, then save the submission's export() model."""
    result = RepairTrack.call(instance, model, clean, req, out)
    export = getattr(instance, EXPORT, None)
    if not callable(export):
        raise TypeError(f"{type(instance).__name__} has no export() method")
    exported = export()
    if not hasattr(exported, "save"):
        raise TypeError(f"export() returned {type(exported).__name__}, not a Keras model")
    exported.save(out / "goodnet.keras")
    return {**result, "model": "goodnet.keras"}


class RepairTrack(TrackKind):
    name = Track.REPAIR.value
    answers = (Track.REPAIR,)
    methods = ("repair", "predict")
    keeps_weights = False  # a repairer may fine-tune the model it was given
    shows_poisoned_inputs = True
    table = Table(
        "Repair", (*REPAIR_MEANS, "ca_clean_models", "failures"), ("der", "ca_clean_models")
    )
    same_seed = SameSeed("scores", ("ca", "asr", "dtr_clean"))
    matrix = (Heat("der", chance=0.5), Heat("asr"))
    outcome = RepairOutcome
    #: Each of REPAIR_MEANS averaged over the backdoored models (a failed task's DER is
    #: 0.5); CA over the clean models, a failed task counting 0 (a repairer must not break
    #: them).
    metrics = (
        *(Metric(name) for name in REPAIR_MEANS),
        Metric("ca_clean_models", over="clean", of="ca", failed=0.0),
    )

    def prepare(self, model: ZooModel, seed: int, options: RunOptions) -> TaskInputs:
        return mixed_test_inputs(model, seed)

    @staticmethod
    def call(
        instance: Any, model: Any, clean: Any, req: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        instance.repair(model, clean)
        x = np.load(req["eval_x"], allow_pickle=False)
        return {"predictions": save_array(out, "predictions", batched(instance.predict, x))}

    def score(
        self,
        result: dict[str, Any],
        out_dir: Path,
        model: ZooModel,
        inputs: TaskInputs,
        predictor: ModelPredictor,
    ) -> Scored:
        card, evs = model.card(), inputs.need_eval_set()
        preds = label_predictions(
            reply_file(result, "predictions", out_dir), len(evs.x), card.num_classes
        )
        pc, pp = evs.split(preds)
        sets = inputs.need_sets()
        before = unrepaired(model, evs, sets, predictor)
        outcome = score_repair(pc, pp, evs.scored(sets), model.truth(), card.num_classes, before)
        rejected = int(np.sum(preds == card.num_classes))
        return {"n_predictions": int(len(preds)), "rejected": rejected}, outcome

    def failed(self, model: ZooModel) -> RepairOutcome:
        """A failed repair counts as no repair at all: DER 0.5 on backdoored models."""
        return RepairOutcome(der=0.5 if model.truth().poisoned else None)


REPAIR = RepairTrack()
