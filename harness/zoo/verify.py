"""Is a built zoo model whole? Its files checked without loading a model.

A zoo object's files are zip archives (``model.keras`` and the ``.npz`` arrays, each member
with a CRC-32) and JSON records, so a file cut short or overwritten is found by reading it
once: the zip's directory and every member's checksum, every JSON parsed. A run checks its
models before the first task (:func:`require_sound`), so a damaged model stops it with one
line instead of failing every submission's task on it as if the submission were at fault;
the fingerprint of each model found whole is kept in ``zoo/verified.json``, so a model is
read again only when its files change. `harness zoo verify` lists the damaged models of a
profile and ``--repair`` removes them, so that `harness zoo build` trains them again.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
import zlib
from pathlib import Path

from harness.errors import ZooError
from harness.zoo.store import ZooModel

#: Files every object has (relative to its folder), and those only some have.
REQUIRED = (
    "public/model.keras",
    "public/card.json",
    "public/clean_val.npz",
    "private/truth.json",
    "private/test.npz",
    "private/poisoned_test.npz",
)
OPTIONAL = ("private/triggers.npz", "private/bundle.json")


def problems(root: Path) -> list[str]:
    """What is wrong with the object in ``root`` (an empty list when it is whole)."""
    found = []
    for rel in (*REQUIRED, *OPTIONAL):
        path = root / rel
        if not path.is_file():
            if rel in REQUIRED:
                found.append(f"{rel}: missing")
            continue
        problem = _file_problem(path)
        if problem:
            found.append(f"{rel}: {problem}")
    return found


def _file_problem(path: Path) -> str | None:
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
            return None
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return f"member {bad} fails its checksum" if bad else None
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return f"unreadable ({exc})"[:200]


def _fingerprint(model: ZooModel) -> list[int]:
    """The files' total size and latest change time (ctime: no write leaves it as it was,
    and no `touch` can set it back)."""
    stats = [(model.root / rel).stat() for rel in REQUIRED if (model.root / rel).is_file()]
    return [sum(s.st_size for s in stats), max((s.st_ctime_ns for s in stats), default=0)]


def _checked_file(models: list[ZooModel]) -> Path:
    """Where the fingerprints of models found whole are kept: beside the zoo's objects, so
    that a run checks a model's files once, not on every start (4.5 s for `default`)."""
    return models[0].root.parent.parent / "verified.json"


def require_sound(models: list[ZooModel], profile: str) -> None:
    """Stop with one line at the first damaged model. A model is read only when its files
    changed since it was last found whole."""
    if not models:
        return
    record = _checked_file(models)
    try:
        checked = json.loads(record.read_text())
    except (OSError, ValueError):
        checked = {}
    before = dict(checked)
    for model in models:
        key = _fingerprint(model)
        if checked.get(model.hash) == key:
            continue
        found = problems(model.root)
        if found:
            raise ZooError(
                f"zoo model {model.id} is damaged ({found[0]})",
                path=model.root,
                fix=f"`harness zoo verify --profile {profile} --repair` removes damaged "
                f"models, then `harness zoo build --profile {profile}` builds them again "
                "(an imported model: import it again)",
            )
        checked[model.hash] = key
    if checked != before:
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(checked))
            tmp.replace(record)
        except OSError:
            pass  # a read-only zoo: the models are checked again next time


def remove(model: ZooModel) -> None:
    """Delete a damaged model's object, so that the next build trains it again."""
    shutil.rmtree(model.root)
