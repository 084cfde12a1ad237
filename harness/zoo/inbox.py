"""What a sandboxed task sees of one zoo model: its public bundle, staged under an
anonymous id, and the order in which a submission's worker is served its models.

A warm worker serves one submission every model of a run, so anything about a task that
the submission can observe must not depend on the model's truth: the staged files (see
``harness.zoo.bundle`` for how the bundle itself is written), the card's id (a hash of the
run and the model id) and the serving order (by that anonymous id, so neither a profile's
order, which lists clean models first, nor a call counter tells what a model is).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from harness.zoo.bundle import fix_mtimes
from harness.zoo.store import ZooModel

M = TypeVar("M", bound=ZooModel)


def anonymous_id(run_id: str, model_id: str) -> str:
    return "model-" + hashlib.sha256(f"{run_id}/{model_id}".encode()).hexdigest()[:10]


def serving_order(run_id: str, models: Sequence[M]) -> list[M]:
    """The models in the order a run serves them: sorted by their anonymous ids, a
    shuffle fixed by the run id that knows nothing of the models' truth."""
    return sorted(models, key=lambda m: anonymous_id(run_id, m.id))


def staged_card(public_dir: Path, anon_id: str) -> str:
    """The card.json text a submission receives: the public card with an anonymous id."""
    card = json.loads((public_dir / "card.json").read_text())
    card["id"] = anon_id
    return json.dumps(card)


def stage_inbox(
    inbox: Path,
    model: ZooModel,
    anon_id: str,
    eval_x: np.ndarray | None,
    poisoned: np.ndarray | None = None,
) -> None:
    """Put exactly one model's public bundle (with an anonymised id) in the worker's inbox;
    ``poisoned`` (oracle submissions only) joins the clean split as ``CleanData.poisoned``."""
    for child in inbox.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    shutil.copyfile(model.public_dir / "model.keras", inbox / "model.keras")
    if poisoned is None:
        shutil.copyfile(model.public_dir / "clean_val.npz", inbox / "clean_val.npz")
    else:
        with np.load(model.public_dir / "clean_val.npz") as npz:
            split = {k: npz[k] for k in npz.files}
        np.savez(inbox / "clean_val.npz", **split, poisoned=poisoned)  # type: ignore[arg-type]
    (inbox / "card.json").write_text(staged_card(model.public_dir, anon_id))
    if eval_x is not None:
        np.save(inbox / "eval_x.npy", eval_x)
    fix_mtimes(inbox)  # the staging time would tell the serving order
