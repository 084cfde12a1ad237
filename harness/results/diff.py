"""Compare the task records of two results stores: what differs between two runs.

``harness store diff A.sqlite B.sqlite [--run RUN] [--tolerance T]`` prints every
(submission, model, track) whose status, failure kind, model facts, stored outputs or
scores differ, and exits 1 when any does (the lines quote stored outputs, which workers
wrote: the command encodes them for the terminal). Times, stderr, versions and the report's pictures are not compared;
a score stored as null and one left out are the same (both mean "not measured"). Used to
check that a change of the harness leaves every stored score as it was, and that two
machines agree.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import ModelFacts, ResultsStore, TaskRecord

Key = tuple[str, str, str]

_FACTS = tuple(f.name for f in fields(ModelFacts))
#: The facts a schema-1 row kept (among its scores): compared only these with such a row.
_FACTS_OF_VERSION_1 = ("poisoned", "dataset")
#: Outputs kept only for the report's pictures (a quantised reconstructed mask): what they
#: measure is compared through the scores, and their bytes move with the last bits.
_PICTURES = frozenset({"trigger_mask"})


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and type(a) is not bool:
        return type(b) is not bool and math.isclose(a, b, rel_tol=0, abs_tol=tolerance)
    return type(a) is type(b) and a == b


def _differences(a: TaskRecord, b: TaskRecord, tolerance: float) -> list[str]:
    """What differs; a score stored as null and one left out are the same (unmeasured)."""
    out = []
    if a.status != b.status:
        out.append(f"status {a.status} != {b.status}")
    if a.failure != b.failure:
        out.append(f"failure {a.failure} != {b.failure}")
    for name in _FACTS_OF_VERSION_1 if min(a.schema_version, b.schema_version) < 2 else _FACTS:
        if getattr(a.facts, name) != getattr(b.facts, name):
            out.append(f"facts.{name}: {getattr(a.facts, name)!r} != {getattr(b.facts, name)!r}")
    for field in ("outputs", "scores"):
        da, db = getattr(a, field), getattr(b, field)
        for key in sorted((set(da) | set(db)) - _PICTURES):
            if not _close(da.get(key), db.get(key), tolerance):
                out.append(f"{field}.{key}: {da.get(key)!r} != {db.get(key)!r}")
    return out


def _key(r: TaskRecord) -> tuple[str, str, str]:
    """A task's key: its model carries the seed for replicates past the first."""
    return (r.submission, r.model_id + (f" (seed {r.replicate})" if r.replicate else ""), r.track)


def diff_runs(
    a: list[TaskRecord], b: list[TaskRecord], tolerance: float = 0.0
) -> dict[Key, list[str]]:
    """Every task whose record differs between ``a`` and ``b`` (or is in one only)."""
    left = {_key(r): r for r in a}
    right = {_key(r): r for r in b}
    out: dict[Key, list[str]] = {}
    for key in sorted(set(left) | set(right)):
        if key not in right:
            out[key] = ["only in the first store"]
        elif key not in left:
            out[key] = ["only in the second store"]
        elif diffs := _differences(left[key], right[key], tolerance):
            out[key] = diffs
    return out


def compare(
    first: Path, second: Path, run: str | None = None, tolerance: float = 0.0
) -> tuple[dict[Key, list[str]], int, int]:
    """The differing tasks of ``run`` (default: each store's latest) in two stores, and how
    many tasks each holds; a store that is not there is one line (``HarnessError``)."""
    runs = []
    for path in (first, second):
        if not path.is_file():
            raise HarnessError("no such results store", path=path, fix="check the path")
        store = ResultsStore(path)
        try:
            chosen = run or store.latest_run()
            runs.append(store.tasks(chosen) if chosen else [])
        finally:
            store.close()
    return diff_runs(runs[0], runs[1], tolerance=tolerance), len(runs[0]), len(runs[1])


def report(diffs: dict[Key, list[str]], compared: tuple[int, int]) -> list[str]:
    """What ``compare`` found, a line a task and a last line of counts."""
    lines = [
        f"{sub} / {model} / {track}: " + "; ".join(d) for (sub, model, track), d in diffs.items()
    ]
    return [*lines, f"{compared[0]} and {compared[1]} tasks compared, {len(diffs)} differ"]
