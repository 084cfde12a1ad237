"""The test zoos' models, kept between test sessions on one machine.

Every session builds into a fresh ``$HARNESS_HOME``, but training the test zoos is a third
of `make test` (about 430 CPU-seconds on 2 cores). A zoo object's directory name is its
spec hash, which covers the entry and the source of the code that builds it
(``harness.zoo.spec.build_code_hash``): an object built from the same hash is the same
model, so a session copies the objects it finds here into its own home instead of training
them, and copies the ones it trained here for the next session. Edit a recipe, a loader or
the builder and the hash changes: those models are trained again.

``HARNESS_TEST_ZOO_CACHE`` names the folder (default ``~/.cache/backdoor-harness-tests``,
under ``$XDG_CACHE_HOME`` when set); ``HARNESS_TEST_ZOO_CACHE=off`` trains everything, as
on a fresh machine (`make test-cold`). The tests that are about building (determinism,
two builds at once, build order) build into homes of their own and never read this cache.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def cache_dir() -> Path | None:
    """Where the objects are kept, or None when the cache is off."""
    value = os.environ.get("HARNESS_TEST_ZOO_CACHE", "")
    if value == "off":
        return None
    if value:
        return Path(value)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "backdoor-harness-tests"


def _complete(path: Path) -> bool:
    """An object directory written to the end (the store's own test: the truth is last)."""
    return (path / "private" / "truth.json").is_file()


def fetch(entries: Sequence[Any], store: Any) -> int:
    """Copy every cached object of ``entries`` that ``store`` lacks into it, each under its
    object lock (parallel test workers fetch together); how many were copied."""
    root = cache_dir()
    if root is None:
        return 0
    copied = 0
    for entry in entries:
        spec_hash = entry.spec_hash()
        cached = root / "objects" / spec_hash
        if not _complete(cached) or store.has_object(spec_hash):
            continue
        with store.object_lock(spec_hash, wait=True):
            if store.has_object(spec_hash):
                continue
            target = store.object_dir(spec_hash)
            shutil.rmtree(target, ignore_errors=True)  # a half-built object, if any
            _copy_into_place(cached, target)
            copied += 1
    return copied


def keep(entries: Sequence[Any], store: Any) -> None:
    """Copy every built object of ``entries`` the cache lacks into it."""
    root = cache_dir()
    if root is None:
        return
    objects = root / "objects"
    try:
        objects.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: the next session trains again, nothing else changes
    for entry in entries:
        spec_hash = entry.spec_hash()
        source, cached = store.object_dir(spec_hash), objects / spec_hash
        if not store.has_object(spec_hash) or _complete(cached):
            continue
        _copy_into_place(source, cached)


def _copy_into_place(source: Path, target: Path) -> None:
    """Copy a folder beside ``target``, then rename it into place: a killed session leaves
    no half-copied object, and a target another session placed meanwhile is kept."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    try:
        partial.rename(target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
