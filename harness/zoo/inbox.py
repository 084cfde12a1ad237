"""What a sandboxed task sees of one zoo model: its public bundle, staged under an
anonymous id, and the order in which a submission's worker is served its models.

A warm worker serves one submission every model of a run, so anything about a task that
the submission can observe must not depend on the model's truth: the staged files (see
``harness.zoo.bundle`` for how the bundle itself is written), the card's id and the serving
order (by that anonymous id, so neither a profile's order, which lists clean models first,
nor a call counter tells what a model is). Nor may the id name the model: it is an HMAC of
the run and model ids under the run's secret key (``harness.zoo.runkey``), since both ids
are public (the run id defaults to the profile's name, `harness grade`'s is "grade").
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from harness.zoo.bundle import fix_mtimes
from harness.zoo.runkey import RunKey, run_key
from harness.zoo.store import ZooModel

M = TypeVar("M", bound=ZooModel)


def anonymous_id(run_id: str, model_id: str, key: RunKey | None = None) -> str:
    """The id a model's staged card carries in a run (or replicate ``run_id``): keyed by
    ``key``, by default the run's own (``run_key``, drawn on the run's first use)."""
    return (key or run_key(run_id)).anonymous_id(run_id, model_id)


def serving_order(run_id: str, models: Sequence[M], key: RunKey | None = None) -> list[M]:
    """The models in the order a run serves them: sorted by their anonymous ids, a
    shuffle fixed by the run's key that knows nothing of the models' truth."""
    keyed = key or run_key(run_id)
    return sorted(models, key=lambda m: keyed.anonymous_id(run_id, m.id))


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
