"""Zoo specs: a TOML profile lists entries (dataset, architecture, attack, training, seed).

Here: ``ZooEntry`` and its content address (with the hash of the code that builds it),
the dealing of drawn training settings, and ``load_profile``. The checks and expansions
of the profile's raw TOML tables (unknown keys, ``[draw]``, ``instances``) are in
``harness.zoo.spec_tables``."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from harness.errors import SpecError
from harness.paths import zoo_specs_dir
from harness.zoo.spec_tables import (
    LR_SCHEDULES,
    check_draw,
    check_keys,
    expand_instances,
    hint,
)

SCHEMA_VERSION = 1
#: Bump to rebuild every zoo even where the code hash below did not change.
BUILDER_VERSION = "1"
#: Code that decides every entry's weights (splits, training, the attack interface, the data
#: interface): a change to it rebuilds the whole zoo. How objects are written and scheduled
#: (zoo/builder.py, zoo/objects.py, zoo/bundle.py) is left out: changing it retrains nothing.
_CORE = ("zoo/training.py", "attacks/base.py", "data/base.py")
#: Dispatch tables and plumbing. Adding a data set, an architecture or a recipe to them
#: must not rebuild the zoo; what an entry resolves through them is hashed instead.
_PLUMBING = frozenset(
    {
        "__init__.py",
        "attacks/__init__.py",
        "attacks/registry.py",
        "data/__init__.py",
        "zoo/architectures.py",
        "errors.py",
        "paths.py",
    }
)
#: Entry keys added after schema 1, with their defaults: they enter the spec hash only when
#: an entry sets them, so adding an option rebuilds no model.
_ADDED_LATER: dict[str, Any] = {"lr_schedule": "constant"}
#: The splits a profile's models are in (``ZooEntry.split``).
SPLITS = ("eval", "train")
#: What a model is, for dealing training settings: each role gets the same mix.
ROLES = ("clean", "counterpart", "backdoored")
_IMPORT = re.compile(r"^\s*from harness\.([\w.]+) import", re.MULTILINE)
#: Modules that moved without changing, under the path they were hashed by before: a
#: move alone builds the same model, so it must not rebuild the zoo.
_MOVED = {"toolkit/reverse.py": "reverse.py"}


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _module_closure(module: str) -> list[str]:
    """A harness module and the harness modules it imports (transitively), as paths
    relative to the package, leaving out the core (hashed anyway) and the plumbing."""
    root = _package_root()
    todo, seen = [module.removeprefix("harness.")], set()
    while todo:
        name = todo.pop()
        rel = name.replace(".", "/") + ".py"
        if name in seen or not (root / rel).is_file() or rel in _CORE or rel in _PLUMBING:
            continue
        seen.add(name)
        todo.extend(_IMPORT.findall((root / rel).read_text()))
    return sorted(n.replace(".", "/") + ".py" for n in seen)


@functools.cache
def build_code_hash(
    dataset: str = "mnist",
    arch: str = "mnist_cnn_a",
    attack: str = "none",
    counterpart: bool = False,
) -> str:
    """Hash of the code that builds such an entry: the core, the data set's loader, the
    architecture's own source and the recipe's modules (with ``harness.attacks.counterpart``
    for a clean counterpart the recipe does not build itself). Editing one recipe, loader
    or architecture rebuilds only the entries that use it; adding one rebuilds nothing."""
    import inspect

    from harness.attacks import RECIPES
    from harness.data import dataset_module
    from harness.zoo.architectures import ARCHITECTURES

    root = _package_root()
    digest = hashlib.sha256()
    rels = list(_CORE) + _module_closure(dataset_module(dataset))
    if attack in RECIPES:
        rels += _module_closure(RECIPES[attack].build.__module__)
        if counterpart and not RECIPES[attack].builds_own_counterpart:
            rels += _module_closure("harness.attacks.counterpart")
    for rel in sorted(set(rels), key=lambda r: _MOVED.get(r, r)):
        digest.update(_MOVED.get(rel, rel).encode())
        digest.update((root / rel).read_bytes())
    if arch in ARCHITECTURES:
        digest.update(inspect.getsource(ARCHITECTURES[arch]).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ZooEntry:
    """One model to build. ``attack == "none"`` means a clean model."""

    id: str
    dataset: str = "mnist"
    arch: str = "mnist_cnn_a"
    attack: str = "none"
    attack_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    epochs: int = 2
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decay to 0 over the fit's epochs
    train_size: int = 0  # 0 = the whole training pool
    val_per_class: int = 50  # clean split handed to submissions
    test_size: int = 2000  # clean test images used for scoring
    asr_floor: float | None = None  # None = the recipe's own floor
    #: "eval" (scored by `harness run`, truth private) or "train" (the labelled training
    #: split `harness zoo release` hands out, never scored). Not part of the content
    #: address: the same model is the same object in either split.
    split: str = "eval"
    #: Models dealt their training settings apart from the rest of their data set and role
    #: (``deal_settings``): a cohort added to a profile later gets the same mix among
    #: itself and leaves the models already built (and their results) untouched. Not part
    #: of the content address either.
    deal_group: str = ""

    @property
    def training(self) -> bool:
        """In the labelled training split (``split = "train"``)?"""
        return self.split == "train"

    @property
    def poisoned(self) -> bool:
        """Backdoored? A recipe's clean counterpart runs its procedure with no trigger."""
        return self.attack != "none" and not self.counterpart

    @property
    def counterpart(self) -> bool:
        """A clean counterpart: the recipe's procedure with nothing implanted."""
        return self.attack != "none" and bool(self.attack_params.get("clean_counterpart", False))

    @property
    def role(self) -> str:
        """clean, counterpart or backdoored: the groups training settings are dealt to."""
        return "backdoored" if self.poisoned else "counterpart" if self.counterpart else "clean"

    def spec_hash(self) -> str:
        """Content address: the entry minus its id, plus the builder version."""
        body = asdict(self)
        body.pop("id")
        body.pop("split")
        body.pop("deal_group")
        for key, default in _ADDED_LATER.items():
            if body[key] == default:  # an entry that does not use it keeps its address
                body.pop(key)
        body["builder_version"] = BUILDER_VERSION
        body["code"] = build_code_hash(self.dataset, self.arch, self.attack, self.counterpart)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ZooProfile:
    name: str
    description: str
    entries: tuple[ZooEntry, ...]
    path: Path


ENTRY_KEYS = {f.name for f in fields(ZooEntry)}
TOP_KEYS = {"schema_version", "name", "description", "defaults", "draw", "models"}


def _rank(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big")


def _entry_rank(profile: str, key: str, entry: ZooEntry) -> int:
    """Where ``entry`` falls in the order ``key``'s choices are dealt in."""
    return _rank(profile, entry.id, key)


def deal_settings(
    profile: str, entries: tuple[ZooEntry, ...], tables: dict[str, dict[str, list[Any]]]
) -> tuple[ZooEntry, ...]:
    """Give every model of a ``[draw.<dataset>]`` its training settings, dealt so that the
    clean models, the clean counterparts and the backdoored models of the data set each
    get the same mix.

    Within each group (data set x role: clean, counterpart or backdoored, x split x the
    entries' ``deal_group``) the models are
    put in an order fixed by a hash of the profile, id and key, and the choices are dealt
    round in that order from a start fixed by the profile, data set and key (the same for
    every group). Where two groups are the same size, each choice then goes to as many
    models of one as of the other, so no setting is commoner on one side (drawn
    independently, 10 epochs went to 8 of 12 backdoored face models and 4 of 12 clean
    ones); otherwise each group's counts are as even as its size allows. The keys are
    dealt in independent orders. Adding or removing a model re-deals its group: a cohort
    added later names a ``deal_group`` of its own."""
    dealt: dict[str, dict[str, Any]] = {e.id: {} for e in entries}
    cohorts = sorted({e.deal_group for e in entries})
    for dataset, table in tables.items():
        for role, split, cohort in itertools.product(ROLES, SPLITS, cohorts):
            group = [
                e
                for e in entries
                if (e.dataset, e.role, e.split, e.deal_group) == (dataset, role, split, cohort)
            ]
            for key, choices in table.items():
                start = _rank(profile, dataset, key) % len(choices)
                order = sorted(group, key=functools.partial(_entry_rank, profile, key))
                for i, e in enumerate(order):
                    dealt[e.id][key] = choices[(start + i) % len(choices)]
    return tuple(replace(e, **dealt[e.id]) for e in entries)


def _entry(
    raw: dict[str, Any],
    defaults: dict[str, Any],
    path: Path,
    index: int,
    draw: dict[str, dict[str, list[Any]]] | None = None,
) -> ZooEntry:
    check_keys(set(raw), ENTRY_KEYS, f"[[models]] #{index + 1}", path)
    merged = {**defaults, **raw}
    if "id" not in merged:
        raise SpecError(
            f"[[models]] #{index + 1} has no id", path=path, fix='add id = "mnist-...-v1"'
        )
    for key in (draw or {}).get(merged.get("dataset", "mnist"), {}):
        if key in raw:
            raise SpecError(
                f"model {merged['id']!r} sets {key}, which this profile draws for every "
                f"{merged.get('dataset', 'mnist')} model",
                path=path,
                fix=f"remove {key} from the model, or from [draw] (a fixed setting for "
                "some models only would tell them apart)",
            )
    try:
        entry = ZooEntry(**merged)
    except TypeError as exc:
        raise SpecError(f"model {merged['id']!r}: {exc}", path=path, fix="check the keys") from None
    if entry.attack != "none":
        from harness.attacks import check_params

        try:
            check_params(entry.attack, entry.attack_params)
        except SpecError as exc:
            raise SpecError(f"model {entry.id!r}: {exc.problem}", path=path, fix=exc.fix) from None
    if entry.split not in SPLITS:
        raise SpecError(
            f"model {entry.id!r}: unknown split {entry.split!r}",
            path=path,
            fix=f"choose from: {', '.join(SPLITS)}",
        )
    if entry.lr_schedule not in LR_SCHEDULES:
        raise SpecError(
            f"model {entry.id!r}: unknown lr_schedule {entry.lr_schedule!r}",
            path=path,
            fix=f"choose from: {', '.join(LR_SCHEDULES)}",
        )
    for name in ("epochs", "batch_size", "val_per_class", "test_size"):
        value = getattr(entry, name)
        if not isinstance(value, int) or value <= 0:
            raise SpecError(
                f"model {entry.id!r}: {name} must be a positive integer",
                path=path,
                fix=f"set {name} = 1 or more",
            )
    return entry


def load_profile(name_or_path: str | Path) -> ZooProfile:
    """Read ``models_zoo/<name>.toml`` (or a path to a TOML file) into a ZooProfile."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = zoo_specs_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in zoo_specs_dir().glob("*.toml"))
        raise SpecError(
            f"no zoo profile {str(name_or_path)!r}", path=path, fix=hint(str(name_or_path), known)
        )
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"invalid TOML: {exc}", path=path, fix="correct the syntax") from None
    check_keys(set(raw), TOP_KEYS, "the profile", path)
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise SpecError(
            f"schema_version must be {SCHEMA_VERSION}",
            path=path,
            fix=f"add schema_version = {SCHEMA_VERSION}",
        )
    defaults = raw.get("defaults", {})
    check_keys(set(defaults), ENTRY_KEYS - {"id"}, "[defaults]", path)
    name = raw.get("name", path.stem)
    draw = check_draw(raw.get("draw", {}), path)
    raws = expand_instances(raw.get("models", []), path)
    entries = tuple(_entry(m, defaults, path, i, draw) for i, m in enumerate(raws))
    if not entries:
        raise SpecError("the profile lists no [[models]]", path=path, fix="add [[models]] tables")
    ids = [e.id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SpecError(
            f"duplicate model id(s): {', '.join(dupes)}",
            path=path,
            fix="give every model its own id",
        )
    return ZooProfile(name, raw.get("description", ""), deal_settings(name, entries, draw), path)
