"""Parse and validate ``submission.toml`` (without importing any submission code)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from harness.api import Track
from harness.errors import SpecError
from harness.submission.files import read_bounded

#: A submission's name, matched whole (``fullmatch``: no trailing newline slips through).
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
#: `harness reproduce` stores a submission run with other parameters as NAME@PARAMS; no
#: submission's own name can hold it (NAME_RE), so it marks those variants in a run.
VARIANT_MARK = "@"


def is_variant(name: str) -> bool:
    """Whether a stored submission name is a `harness reproduce` parameter variant."""
    return VARIANT_MARK in name


ENTRY_RE = re.compile(r"[A-Za-z_][\w.]{0,199}:[A-Za-z_]\w{0,99}")
#: Bounds a manifest meets before it is parsed (size, nesting) and used (params): a
#: manifest is untrusted, and its params travel to the worker in one protocol message
#: (harness.sandbox.protocol.MAX_MESSAGE_BYTES, 8 MiB).
MAX_MANIFEST_BYTES = 256 << 10
MAX_NESTING = 16
MAX_PARAMS_BYTES = 64 << 10
#: What the nesting scan reads of TOML: strings and comments (skipped), brackets (counted).
_TOKENS = re.compile(
    r'"""(?:\\.|[^\\])*?"""|\'\'\'.*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]',
    re.S,
)
KEYS = {
    "name",
    "authors",
    "entry",
    "tracks",
    "params",
    "resources",
    "oracle",
    "description",
    "configure",
}
RESOURCE_KEYS = {"wall_seconds_per_model": float, "memory_gb": float, "configure_seconds": float}


@dataclass(frozen=True)
class ResourceRequest:
    wall_seconds_per_model: float = 600.0
    memory_gb: float = 6.0
    configure_seconds: float = 1800.0  # the configure step's wall clock (learned detectors)


@dataclass(frozen=True)
class SubmissionSpec:
    name: str
    entry: str
    tracks: tuple[Track, ...]
    path: Path
    authors: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    resources: ResourceRequest = ResourceRequest()
    oracle: bool = False
    content_hash: str = ""
    #: a learned detector: ``configure(training_dir, out_dir)`` runs first, once, over the
    #: profile's labelled training split (harness/execution/configure.py)
    configure: bool = False

    @property
    def module_name(self) -> str:
        return self.entry.split(":")[0]


def content_hash(folder: Path) -> str:
    """Hash of every file of the submission (code and data), so edits trigger reruns."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        digest.update(f.relative_to(folder).as_posix().encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def _fail(problem: str, path: Path, fix: str) -> SpecError:
    return SpecError(problem, path=path, fix=fix)


def _bracket_depth(text: str) -> int:
    """The deepest nesting of arrays and inline tables in TOML text (strings and comments
    skipped): read before the parser, which recurses once per level."""
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif mark in ("]", "}"):
            depth = max(0, depth - 1)
    return deepest


def _value_depth(value: Any) -> int:
    """How deep tables and arrays nest in a parsed value (dotted keys nest without
    brackets); counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if depth + 1 > MAX_NESTING:
                break
            stack += [(v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _read_manifest(manifest: Path) -> dict[str, Any]:
    """The manifest's TOML, parsed only within its bounds: size, then nesting."""
    try:
        text = read_bounded(manifest, MAX_MANIFEST_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"not UTF-8 text ({exc.reason})", manifest, "save it as UTF-8") from None
    except OSError as exc:
        raise _fail(
            f"cannot be read ({exc.strerror})",
            manifest,
            f"make it a regular file of at most {MAX_MANIFEST_BYTES >> 10} KiB",
        ) from None
    too_deep = _fail(
        f"tables and arrays nest more than {MAX_NESTING} deep",
        manifest,
        "flatten [params]: a manifest names settings, it is no data file",
    )
    if _bracket_depth(text) > MAX_NESTING:
        raise too_deep
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"invalid TOML: {exc}", manifest, "correct the syntax") from None
    except RecursionError:
        raise too_deep from None
    except ValueError:  # an integer of more than 4,300 digits
        raise _fail(
            "a number is too long to read", manifest, "use numbers of a few digits"
        ) from None
    if _value_depth(raw) > MAX_NESTING:
        raise too_deep
    return raw


def _params(raw: Any, path: Path) -> dict[str, Any]:
    """[params]: a table of JSON values, small enough for the worker's protocol."""
    if not isinstance(raw, dict):
        raise _fail("[params] must be a table", path, "use a [params] table")
    try:
        size = len(json.dumps(raw, allow_nan=False).encode())
    except (TypeError, ValueError):
        raise _fail(
            "[params] holds a date, a time, NaN or infinity",
            path,
            "give params as strings, numbers, booleans, arrays and tables",
        ) from None
    if size > MAX_PARAMS_BYTES:
        raise _fail(
            f"[params] takes {size} bytes as JSON, more than {MAX_PARAMS_BYTES >> 10} KiB",
            path,
            "put data in a file of the submission and name it in params",
        )
    return raw


def _tracks(raw: Any, path: Path) -> tuple[Track, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail("tracks must be a non-empty list", path, 'e.g. tracks = ["detect", "repair"]')
    try:
        return tuple(dict.fromkeys(Track.parse(str(t)) for t in raw))
    except ValueError as exc:
        raise _fail(str(exc), path, "fix the tracks list") from None


def _resources(raw: Any, path: Path) -> ResourceRequest:
    if not isinstance(raw, dict):
        raise _fail("[resources] must be a table", path, "use [resources] with numbers")
    for key, value in raw.items():
        if key not in RESOURCE_KEYS:
            raise _fail(f"unknown resource {key!r}", path, f"use {', '.join(RESOURCE_KEYS)}")
        if not _positive(value):
            raise _fail(f"resources.{key} must be a positive number", path, f"set {key} = 600")
    return ResourceRequest(**{k: float(v) for k, v in raw.items()})


def _positive(value: Any) -> bool:
    """Whether a TOML value is a finite positive number (an integer of 400 digits is not:
    it overflows a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:
        return False


def _module_file(folder: Path, module: str) -> Path | None:
    base = folder.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def load_submission(folder: str | Path) -> SubmissionSpec:
    """Read a submission folder's manifest; every problem is a SpecError naming the fix."""
    folder = Path(folder).resolve()
    manifest = folder / "submission.toml"
    if not folder.is_dir():
        raise _fail("no such submission folder", folder, "pass a folder with submission.toml")
    if not manifest.exists() and not manifest.is_symlink():
        raise _fail(
            "missing submission.toml",
            folder,
            "copy submissions/template/submission.toml and edit it",
        )
    raw = _read_manifest(manifest)
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _fail(
            f"unknown key(s) {', '.join(k if k.isidentifier() else repr(k) for k in unknown)}",
            manifest,
            f"allowed keys: {', '.join(sorted(KEYS))}",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise _fail(
            f"name {name!r} is missing or invalid",
            manifest,
            'use lower-case letters, digits, "-", "_" or ".", e.g. name = "my-defense"',
        )
    entry = raw.get("entry")
    if not isinstance(entry, str) or not ENTRY_RE.fullmatch(entry):
        raise _fail(
            f"entry {entry!r} is missing or not module:Class",
            manifest,
            'e.g. entry = "submission:MyDefense"',
        )
    if _module_file(folder, entry.split(":")[0]) is None:
        raise _fail(
            f"entry module {entry.split(':')[0]!r} not found in the folder",
            manifest,
            f"add {entry.split(':')[0].replace('.', '/')}.py next to submission.toml",
        )
    params = _params(raw.get("params", {}), manifest)
    authors = raw.get("authors", [])
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise _fail("authors must be a list of strings", manifest, 'authors = ["Ada"]')
    oracle = raw.get("oracle", False)
    if not isinstance(oracle, bool):
        raise _fail("oracle must be true or false", manifest, "oracle = false")
    configure = raw.get("configure", False)
    if not isinstance(configure, bool):
        raise _fail("configure must be true or false", manifest, "configure = true")
    return SubmissionSpec(
        name=name,
        entry=entry,
        tracks=_tracks(raw.get("tracks"), manifest),
        path=folder,
        authors=tuple(authors),
        params=params,
        resources=_resources(raw.get("resources", {}), manifest),
        oracle=oracle,
        content_hash=content_hash(folder),
        configure=configure,
    )
