"""A profile's two splits: the evaluation split `harness run` scores (truth private) and
the labelled training split `harness zoo release` hands out, as the Trojan Detection
Challenge and TrojAI give participants labelled training models for learned detectors
(meta-classifiers such as MNTD, Xu et al., "Detecting AI Trojans Using Meta Neural
Analysis", IEEE S&P 2021).

A model's split is a line of its profile (``split = "train"`` in ``models_zoo/P.toml``,
``ZooEntry.split``), not a property of the built model: the same object can be training
data in one profile and evaluation data in another. `harness zoo build` records a
profile's splits beside its index (``zoo/profiles/P.splits.json``); a profile built
without that record reads them from its spec in models_zoo/, and one with neither (an
imported profile) is all evaluation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.errors import HarnessError, SpecError
from harness.zoo.spec import ZooProfile, load_profile
from harness.zoo.store import ZooModel, ZooStore

EVAL, TRAIN = "eval", "train"
#: What a released model's folder holds besides its public bundle: its truth and triggers.
RELEASED_PRIVATE = ("truth.json", "triggers.npz")


def _record_path(zoo: ZooStore, profile: str) -> Path:
    return zoo.index_path(profile).with_suffix(".splits.json")


def record(spec: ZooProfile, zoo: ZooStore | None = None) -> None:
    """Keep the splits of a built profile beside its index."""
    zoo = zoo or ZooStore()
    body = {e.id: e.split for e in spec.entries}
    _record_path(zoo, spec.name).write_text(json.dumps(body, indent=1, sort_keys=True))


def splits(profile: str, zoo: ZooStore | None = None) -> dict[str, str]:
    """Model id -> split: as recorded at build time, else from the profile's spec, else
    empty (every model in the evaluation split)."""
    path = _record_path(zoo or ZooStore(), profile)
    if path.is_file():
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            body = None
        if isinstance(body, dict):
            return {str(k): str(v) for k, v in body.items()}
    try:
        return {e.id: e.split for e in load_profile(profile).entries}
    except SpecError:
        return {}


def of_split(
    profile: str, models: list[ZooModel], split: str, zoo: ZooStore | None = None
) -> list[ZooModel]:
    """The models of ``split`` among ``models`` (a model no split names: eval)."""
    known = splits(profile, zoo)
    return [m for m in models if known.get(m.id, EVAL) == split]


def release(profile: str, out: Path, split: str = TRAIN, zoo: ZooStore | None = None) -> int:
    """Write the training split of a built profile to ``out``: one folder per model with
    its public bundle (what a submission is handed) and its truth (``truth.json``: backdoored
    or not, attack, targets, parameters) and triggers (``triggers.npz``), and ``index.json``
    listing them. Returns the number of models. The evaluation split is never released."""
    if split != TRAIN:
        raise HarnessError(
            f"the {split!r} split cannot be released: its truth is what runs are scored on",
            fix=f"release the training split (--split {TRAIN})",
        )
    zoo = zoo or ZooStore()
    models = of_split(profile, zoo.models(profile), TRAIN, zoo)
    if not models:
        raise HarnessError(
            f"profile {profile!r} has no training split",
            fix=f'mark its training models split = "{TRAIN}" in models_zoo/{profile}.toml',
        )
    return write_release(models, out, profile)


def write_release(models: list[ZooModel], out: Path, profile: str) -> int:
    """``models`` as a release folder (see ``release``); ``out`` must be new or empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HarnessError(
            "the release folder exists and is not empty", path=out, fix="choose a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for model in models:
        folder = out / model.id
        shutil.copytree(model.public_dir, folder)
        for name in RELEASED_PRIVATE:
            if (model.private_dir / name).is_file():
                shutil.copy2(model.private_dir / name, folder / name)
        truth = model.truth()
        index.append(
            {
                "id": model.id,
                "poisoned": truth.poisoned,
                "role": truth.role,
                "attack": truth.attack,
                "targets": truth.targets,
                "dataset": model.card().dataset,
            }
        )
    (out / "index.json").write_text(json.dumps({"profile": profile, "models": index}, indent=1))
    return len(models)
