"""One scored track's task: what the worker gets with a model, and how its reply becomes
per-model scores.

``prepare`` picks the evaluation inputs (clean and poisoned test images shuffled together
for repair and filter, a budget for fuzz); ``score`` validates the reply's files (nothing
is trusted before that) and scores them against the model's private truth. Answers a score
needs from the model itself (generated fuzz inputs, a reconstructed trigger stamped on
held-out images) come from the zoo's own file through ``ModelPredictor``, never from the
sandboxed submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import DEFAULT_FUZZ_BUDGET as FUZZ_BUDGET
from harness.scoring import tasks as task_scores
from harness.scoring.evalset import EvalSet, draw_eval_set
from harness.submission import validate
from harness.zoo.predict import ModelPredictor
from harness.zoo.store import TestSets, ZooModel

#: Held-out clean test images a reconstructed trigger is stamped on (trigger ASR).
TRIGGER_ASR_IMAGES = 1000
#: Poisoned test images handed to oracle submissions as ``CleanData.poisoned``.
ORACLE_POISONED = 100


@dataclass
class TaskInputs:
    """What one task sends besides the public bundle, and what scoring needs back."""

    eval_set: EvalSet | None = None
    sets: TestSets | None = None

    @property
    def eval_x(self) -> np.ndarray | None:
        return None if self.eval_set is None else self.eval_set.x

    request: dict[str, Any] = field(default_factory=dict)


def prepare(track: str, model: ZooModel, seed: int, fuzz_budget: int = FUZZ_BUDGET) -> TaskInputs:
    if track in ("repair", "filter"):
        sets = model.test_sets()
        return TaskInputs(draw_eval_set(sets, seed), sets)
    if track == "fuzz":
        return TaskInputs(request={"budget": int(fuzz_budget)})
    return TaskInputs()


def score(
    track: str,
    result: dict[str, Any],
    out_dir: Path,
    model: ZooModel,
    inputs: TaskInputs,
    predictor: ModelPredictor,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(outputs to store, scores) of one validated reply; raises validate.OutputError."""
    return SCORERS[track](result, out_dir, model, inputs, predictor)


def _detect(
    result: dict[str, Any], out_dir: Path, model: ZooModel, _: TaskInputs, predictor: ModelPredictor
) -> tuple[dict[str, Any], dict[str, Any]]:
    card, truth = model.card(), model.truth()
    out = validate.detect_output(
        result, lambda f: out_dir / f, tuple(card.input_shape), card.num_classes
    )
    scores = task_scores.score_detection(out, truth, [m for m, _ in model.triggers()])
    if out.mask is not None and truth.poisoned and truth.target_maps:
        sets = model.test_sets()
        x, y = sets.x[:TRIGGER_ASR_IMAGES], sets.y[:TRIGGER_ASR_IMAGES]
        stamped = (1.0 - out.mask[None, :, :, None]) * x + out.mask[None, :, :, None] * out.pattern
        scores["trigger_asr"] = task_scores.trigger_asr(
            predictor.labels(model, stamped), y, truth.target_maps
        )
    outputs = {
        "score": out.score,
        "target_labels": out.target_labels,
        "trigger": out.mask is not None,
        "extra": result.get("extra", {}),
    }
    return outputs, scores


def _repair(
    result: dict[str, Any],
    out_dir: Path,
    model: ZooModel,
    inp: TaskInputs,
    predictor: ModelPredictor,
) -> tuple[dict[str, Any], dict[str, Any]]:
    card, evs = model.card(), _eval_set(inp)
    preds = validate.label_predictions(
        out_dir / result["predictions"], len(evs.x), card.num_classes
    )
    pc, pp = evs.split(preds)
    scored = evs.scored(_sets(inp))
    scores = task_scores.score_repair(
        pc, pp, scored, model.truth(), card.num_classes, unrepaired(model, scored, predictor)
    )
    outputs = {"n_predictions": int(len(preds)), "rejected": int(np.sum(preds == card.num_classes))}
    return outputs, scores


def unrepaired(
    model: ZooModel, sets: TestSets, predictor: ModelPredictor
) -> tuple[float, float | None]:
    """The zoo model's own (CA, ASR) on the sets a repair task scores: the "before" of DER."""
    ca = float(np.mean(predictor.labels(model, sets.x) == sets.y))
    if len(sets.y_tgt) == 0:
        return ca, None
    return ca, float(np.mean(predictor.labels(model, sets.x_poisoned) == sets.y_tgt))


def _eval_set(inp: TaskInputs) -> EvalSet:
    if inp.eval_set is None:
        raise RuntimeError("a repair or filter task was prepared without its inputs")
    return inp.eval_set


def _sets(inp: TaskInputs) -> TestSets:
    if inp.sets is None:
        raise RuntimeError("a repair or filter task was prepared without its test sets")
    return inp.sets


def _filter(
    result: dict[str, Any], out_dir: Path, model: ZooModel, inp: TaskInputs, _: ModelPredictor
) -> tuple[dict[str, Any], dict[str, Any]]:
    evs = _eval_set(inp)
    flags = validate.input_scores(out_dir / result["scores"], len(evs.x))
    clean, poisoned = evs.split(flags)
    scores = task_scores.score_filter(clean, poisoned, model.truth())
    outputs = {"n_scores": int(len(flags)), "flagged": int(np.sum(flags > 0.5))}
    return outputs, scores


def _fuzz(
    result: dict[str, Any],
    out_dir: Path,
    model: ZooModel,
    inp: TaskInputs,
    predictor: ModelPredictor,
) -> tuple[dict[str, Any], dict[str, Any]]:
    card = model.card()
    with np.load(model.public_dir / "clean_val.npz") as npz:
        seed_labels = npz["y"]
    x, idx = validate.generated_inputs(
        result,
        lambda f: out_dir / f,
        tuple(card.input_shape),
        (float(card.input_range[0]), float(card.input_range[1])),
        int(inp.request["budget"]),
        len(seed_labels),
    )
    preds = predictor.labels(model, x) if len(x) else np.zeros(0, np.int64)
    scores = task_scores.score_fuzz(preds, seed_labels[idx], model.truth(), card.num_classes)
    outputs = {"n_generated": int(len(x)), "label_changed": int(np.sum(preds != seed_labels[idx]))}
    return outputs, scores


SCORERS = {"detect": _detect, "repair": _repair, "filter": _filter, "fuzz": _fuzz}


def failed_scores(track: str, model: ZooModel) -> dict[str, Any]:
    """What a failed task counts as: detection 0.5, no repair, nothing filtered or found."""
    truth = model.truth()
    if track == "detect":
        return {"poisoned": truth.poisoned, "score": 0.5, "missing": True}
    if track == "repair":
        return task_scores.failed_repair_scores(truth)
    return {"poisoned": truth.poisoned}


def oracle_sample(model: ZooModel) -> np.ndarray:
    """The few poisoned test images an oracle submission sees (empty for clean models)."""
    return model.test_sets().x_poisoned[:ORACLE_POISONED].astype(np.float32)
