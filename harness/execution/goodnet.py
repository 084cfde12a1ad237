"""CSAW-HackML GoodNets as single Keras files: export one, check one.

The contest's grader loads a model with plain ``keras.models.load_model``, takes the argmax
and prints accuracy; a GoodNet answers N (the class count) for inputs it rejects. So an
exported GoodNet must be built from standard Keras layers only (no Lambda, no custom
class) and have N+1 outputs, the last meaning "rejected".

- ``harness.toolkit.goodnet.agreement_goodnet(bad, repaired)`` builds one such GoodNet
  (the decision of the CSAW-HackML 2020 course project report) for submissions to return
  from their ``export()`` method.
- ``export_goodnet(...)`` runs a submission's ``repair`` and ``export`` in the sandbox
  on one zoo model, then checks the file in a fresh interpreter that knows no custom code,
  exactly as the grader would load it, and scores its answers on the model's test sets.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

#: Wall clock of the grader's-view check of an exported file (one load, one prediction).
CHECK_SECONDS = 600.0


# -- the check the contest's grader would do ------------------------------------------------
_CHECK = r"""
import json, sys
import numpy as np
import keras
src, x_path, out_path, preds_path = sys.argv[1:5]
model = keras.models.load_model(src)  # plain: no custom objects, safe_mode on
x = np.load(x_path)
np.save(preds_path, np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1))
model.save(out_path)
keras.models.load_model(out_path)
print(json.dumps({"outputs": int(model.outputs[0].shape[-1])}))
"""


def check_file(
    path: Path, x: np.ndarray, out: Path, num_classes: int, backend: str = "auto"
) -> np.ndarray:
    """Load ``path`` as the grader would (a fresh interpreter, plain ``load_model``); return
    its argmax answers on ``x`` and save it to ``out``. Refuses files the grader cannot use
    (and then writes nothing).

    The file comes from a submission, so the check runs in a sandbox of its own
    (harness.sandbox.oneshot) in which no submission code exists: a malformed zip or HDF5
    file, a Lambda layer or a custom class fails there, and nothing of the file is parsed
    in the harness's process."""
    from harness.sandbox.limits import SandboxLimits
    from harness.sandbox.oneshot import run_once
    from harness.sandbox.readback import Inside, ReadbackError, copy_file
    from harness.submission.validate import OutputError, load_array

    with tempfile.TemporaryDirectory(prefix="harness-goodnet-") as tmp:
        inputs, answers = Path(tmp) / "inputs", Path(tmp) / "answers"
        inputs.mkdir()
        answers.mkdir()
        shutil.copyfile(path, inputs / f"model{path.suffix}")
        np.save(inputs / "x.npy", x)
        program = [sys.executable, "-I", "-c", _CHECK, f"/inbox/model{path.suffix}",
                   "/inbox/x.npy", f"/scratch/goodnet{out.suffix}", "/scratch/p.npy"]  # fmt: skip
        limits = SandboxLimits(wall_seconds=CHECK_SECONDS)
        done = run_once(program, inputs, answers, limits, backend)
        if done.returncode != 0 or done.breach:
            last = done.breach or (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise HarnessError(
                f"plain keras.models.load_model cannot use the exported model: {last[:300]}",
                fix="build the GoodNet from standard Keras layers (harness.execution.goodnet."
                "agreement_goodnet does), without Lambda layers or custom classes",
            )
        try:
            outputs = int(json.loads(done.stdout.strip().splitlines()[-1])["outputs"])
            preds = load_array(answers / "p.npy", "the check's answers")
        except (OutputError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise HarnessError(f"the exported model's check gave no answer ({exc})") from None
        _refuse_off_by_one(outputs, preds, num_classes)
        try:
            copy_file(Inside(answers, (f"goodnet{out.suffix}",)), out, "the check's model file")
        except ReadbackError as exc:
            raise HarnessError(f"the exported model's check wrote no model file ({exc})") from None
    return preds


def _refuse_off_by_one(outputs: int, preds: np.ndarray, n: int) -> None:
    if outputs != n + 1 or (len(preds) and preds.max() > n):
        extra = int(np.sum(preds == n + 1))
        said = f"; it answers N+1 = {n + 1} for {extra} of {len(preds)} inputs" if extra else ""
        raise HarnessError(
            f"the exported model has {outputs} outputs for {n} classes{said}: the contest's "
            f"grader expects N+1 = {n + 1} outputs, label N = {n} meaning rejected",
            fix=f"return a model whose last ({n + 1}th) output means rejected, "
            "e.g. harness.toolkit.goodnet.agreement_goodnet(bad, repaired)",
        )


@dataclass(frozen=True)
class ExportResult:
    path: Path
    outputs: int
    scores: dict[str, Any]  # CA, ASR and the four rates of its answers on the whole test sets
    agreement: float  # share of the repair task's inputs it answers as the repair track did


def export_goodnet(
    submission: Path, model: Any, out: Path, *, backend: str = "auto"
) -> ExportResult:
    """Repair ``model`` (a ZooModel) with the submission in the sandbox, take its
    ``export()``, check the file the grader's way and write it to ``out``."""
    from harness.api import Track
    from harness.execution.task import SubmissionRunner, eval_seed
    from harness.sandbox.backends import resolve_backend
    from harness.sandbox.client import WorkerFailure
    from harness.sandbox.limits import SandboxLimits
    from harness.sandbox.readback import ReadbackError, copy_file
    from harness.submission.manifest import load_submission
    from harness.submission.validate import OutputError, reply_file, reply_object
    from harness.tracks.repair import EXPORT, label_predictions, score_repair
    from harness.zoo.evalset import draw_eval_set

    spec = load_submission(submission)
    if Track.REPAIR not in spec.tracks:
        raise HarnessError(
            f"submission {spec.name!r} does not take the repair track",
            path=submission / "submission.toml",
            fix=f"export a repairer: tracks must include {Track.REPAIR.value!r}",
        )
    if out.suffix not in (".keras", ".h5"):
        raise HarnessError(
            "the output must end in .keras or .h5", path=out, fix="e.g. --out goodnet.h5"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    card, sets = model.card(), model.test_sets()
    seed = eval_seed(EXPORT, model.id)
    evs = draw_eval_set(sets, seed)
    eval_x = evs.x
    with tempfile.TemporaryDirectory(prefix=f"harness-export-{spec.name}-") as tmp:
        runner = SubmissionRunner(spec, resolve_backend(backend), SandboxLimits(), Path(tmp))
        try:
            reply, out_dir = runner.request(EXPORT, model, EXPORT, eval_x)
            if not reply.get("ok"):
                raise HarnessError(
                    f"{spec.name} failed to export: {reply.get('error', 'unknown error')}",
                    path=submission,
                    fix="give the entry class an export() method returning a Keras model "
                    "(see docs/SUBMITTING.md)",
                )
            local = Path(tmp) / "exported.keras"
            try:
                result = reply_object(reply.get("result"), "result")
                produced = reply_file(result, "model", out_dir)
                track_preds = label_predictions(
                    reply_file(result, "predictions", out_dir), len(eval_x), card.num_classes
                )
                try:  # a real file of the output folder, never what a link there points at
                    copy_file(produced, local, "the exported model file")
                except ReadbackError as exc:
                    raise OutputError(str(exc)) from None
            except OutputError as exc:
                raise HarnessError(
                    str(exc), path=submission, fix="fix predict() or export() (docs/SUBMITTING.md)"
                ) from None
        except WorkerFailure as exc:
            raise HarnessError(
                f"{spec.name}'s sandbox worker failed: {exc.reason}",
                path=submission,
                fix="run `harness submission check` on it",
            ) from None
        finally:
            runner.close()
        # The grader's view: the whole clean and poisoned test sets (as the contest's grader
        # scores them), after the task's own inputs (for the agreement with the repair track).
        everything = np.concatenate([eval_x, sets.x, sets.x_poisoned]).astype(np.float32)
        preds = check_file(local, everything, out, card.num_classes, backend)
    on_task, pc = preds[: len(eval_x)], preds[len(eval_x) : len(eval_x) + len(sets.y)]
    pp = preds[len(eval_x) + len(sets.y) :]
    scores = score_repair(pc, pp, sets, model.truth(), card.num_classes).to_json()
    return ExportResult(out, card.num_classes + 1, scores, float(np.mean(on_task == track_preds)))
