"""The built zoo on disk: content-addressed objects plus one index per profile.

zoo/objects/<spec_hash>/public/   model.keras, card.json, clean_val.npz
zoo/objects/<spec_hash>/private/  truth.json, triggers.npz, test.npz, poisoned_test.npz
zoo/profiles/<profile>.json       [{id, hash}], zoo_hash
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.attacks.base import TriggerSpec
from harness.attacks.kinds import from_arrays
from harness.errors import ZooError
from harness.paths import zoo_dir
from harness.zoo.bundle import PUBLIC_FILES, is_current, migrate
from harness.zoo.records import ModelCard, TruthRecord

__all__ = ["PUBLIC_FILES", "TestSets", "ZooModel", "ZooStore"]


@dataclass(frozen=True)
class TestSets:
    """The private scoring sets of one model."""

    x: np.ndarray
    y: np.ndarray
    x_poisoned: np.ndarray  # empty for clean models
    y_src: np.ndarray
    y_tgt: np.ndarray
    #: row of ``x`` each poisoned image was stamped from; None where unknown (imports)
    src_index: np.ndarray | None = None
    #: the model's triggers (of any kind, ``harness.attacks.kinds``); none for a clean or
    #: imported model
    triggers: tuple[TriggerSpec, ...] = ()
    #: the data set the images come from (the card's): SynthFaces draws fresh faces
    dataset: str = ""


@dataclass(frozen=True)
class ZooModel:
    """One built model of a profile: its id, content hash and folders."""

    id: str
    hash: str
    root: Path

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    def card(self) -> ModelCard:
        return ModelCard.read(self.public_dir / "card.json")

    def truth(self) -> TruthRecord:
        return TruthRecord.read(self.private_dir / "truth.json")

    def test_sets(self) -> TestSets:
        with np.load(self.private_dir / "test.npz") as clean:
            x, y = _scaled(clean), clean["y"]
        with np.load(self.private_dir / "poisoned_test.npz") as pois:
            src = pois["src_index"] if "src_index" in pois.files else None
            xp, y_src, y_tgt = _scaled(pois), pois["y_src"], pois["y_tgt"]
        triggers = tuple(self.trigger_specs()) if len(y_src) else ()
        return TestSets(x, y, xp, y_src, y_tgt, src, triggers, self.card().dataset)

    def triggers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mask, pattern) of each trigger: what trigger-reconstruction accuracy and the
        trigger pictures compare with."""
        return [(t.mask, t.pattern) for t in self.trigger_specs()]

    def trigger_specs(self) -> list[TriggerSpec]:
        """The triggers as the harness applies them (blend, additive or warp)."""
        with np.load(self.private_dir / "triggers.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        n = len([k for k in arrays if k.startswith("mask_")])
        if n == 0:  # a clean model, or an import whose truth names targets but no triggers
            return []
        maps = self.truth().target_maps
        if len(maps) != n:
            raise ZooError(
                f"zoo model {self.id} is damaged ({n} triggers but {len(maps)} target maps)",
                path=self.private_dir,
                fix="run `harness zoo verify --repair`, then build its profile again",
            )
        return from_arrays(arrays, maps)


def _scaled(npz: Any) -> np.ndarray:
    """Images in the model's input range. Imported sets keep their stored pixels (uint8)
    and the ``divisor`` of the model's preprocessing; built ones are float32 already."""
    if "divisor" not in npz.files:
        return npz["x"]
    return npz["x"].astype(np.float32) / np.float32(npz["divisor"])


class ZooStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else zoo_dir()
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "profiles").mkdir(parents=True, exist_ok=True)

    def object_dir(self, spec_hash: str) -> Path:
        return self.root / "objects" / spec_hash

    def has_object(self, spec_hash: str) -> bool:
        return (self.object_dir(spec_hash) / "private" / "truth.json").is_file()

    @contextlib.contextmanager
    def object_lock(self, spec_hash: str, *, wait: bool) -> Iterator[bool]:
        """Hold the build lock of one object: yields True when held, False when another
        process holds it and ``wait`` is off. Every process that builds into this store
        (two `harness zoo build`s, parallel test workers, cluster workers sharing one
        HARNESS_HOME) takes it, so no object is ever trained twice or half-written."""
        locks = self.root / "locks"
        locks.mkdir(exist_ok=True)
        with open(locks / f"{spec_hash}.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def migrate_stale(self, models: list[ZooModel]) -> int:
        """Migrate every model whose bundle is in an older format (bundle.py); how many
        were. Under each object's lock, so two runs sharing a zoo never migrate one twice."""
        done = 0
        for model in models:
            if is_current(model.root):
                continue
            with self.object_lock(model.hash, wait=True):
                if not is_current(model.root):  # another process may have done it meanwhile
                    migrate(model.root)
                    done += 1
        return done

    def index_path(self, profile: str) -> Path:
        """The built index of a profile, named by the profile or by its TOML file's path
        (a path resolves to the name inside the file, which is what a build records)."""
        if profile.endswith(".toml"):
            from harness.zoo.spec import load_profile

            profile = load_profile(profile).name
        return self.root / "profiles" / f"{profile}.json"

    def write_index(self, profile: str, pairs: list[tuple[str, str]]) -> str:
        zoo_hash = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]
        body = {
            "profile": profile,
            "zoo_hash": zoo_hash,
            "models": [{"id": i, "hash": h} for i, h in pairs],
        }
        tmp = self.index_path(profile).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=2))
        tmp.replace(self.index_path(profile))
        return zoo_hash

    def add_to_index(self, profile: str, model_id: str, spec_hash: str) -> str:
        """Add (or replace) one model in a profile's index: how imports grow a profile."""
        path = self.index_path(profile)
        pairs = []
        if path.is_file():
            pairs = [(m["id"], m["hash"]) for m in json.loads(path.read_text())["models"]]
        pairs = [(i, h) for i, h in pairs if i != model_id] + [(model_id, spec_hash)]
        return self.write_index(profile, pairs)

    def zoo_hash(self, profile: str) -> str:
        return self._index(profile)["zoo_hash"]

    def _index(self, profile: str) -> dict:
        path = self.index_path(profile)
        if not path.is_file():
            raise ZooError(
                f"the {profile!r} zoo is not built",
                path=path,
                fix=f"run `harness zoo build --profile {profile}`",
            )
        return json.loads(path.read_text())

    def entries(self, profile: str) -> list[ZooModel]:
        """Every model the profile's index names, whether its object is there or not."""
        return [
            ZooModel(item["id"], item["hash"], self.object_dir(item["hash"]))
            for item in self._index(profile)["models"]
        ]

    def models(self, profile: str) -> list[ZooModel]:
        out = self.entries(profile)
        for model in out:
            if not self.has_object(model.hash):
                raise ZooError(
                    f"model {model.id} is missing from the store",
                    path=model.root,
                    fix=f"rebuild: `harness zoo build --profile {profile}`",
                )
        return out

    def model(self, profile: str, model_id: str) -> ZooModel:
        for m in self.models(profile):
            if m.id == model_id:
                return m
        ids = ", ".join(m.id for m in self.models(profile))
        raise ZooError(f"no model {model_id!r} in the {profile!r} zoo", fix=f"known ids: {ids}")
