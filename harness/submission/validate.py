"""Passive checks on every raw output a worker returns, before the harness trusts it.

The reply comes from inside the sandbox, so any JSON is possible: these helpers read its
fields and files, and every way a reply can be wrong is an OutputError whose message says
what is wrong and how to fix it. Each track's own checks (``harness.tracks``) build on them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.sandbox.readback import Inside, ReadbackError, as_inside, open_file


class OutputError(Exception):
    """A submission returned something outside the contract."""


#: How deep a reply's JSON may nest, and how many values it may hold. Honest replies nest
#: a few levels (a Detection's ``extra`` of lists in a dict) and hold a few thousand
#: values; the store's serialiser, the reports and pickling between cluster workers all
#: recurse, and fail near 1000 levels.
MAX_REPLY_DEPTH = 32
MAX_REPLY_VALUES = 200_000


def load_array(scratch_file: Path | Inside, what: str, max_bytes: int = 256 << 20) -> np.ndarray:
    """One .npy array the worker wrote: refused when missing, a link (the file or any folder
    on its path), not a regular file, too big, or not a plain array of booleans, integers
    or floats. A plain path is a file the worker wrote in a folder the harness made."""
    try:
        with open_file(as_inside(scratch_file), what, max_bytes) as fh:
            try:
                value = np.load(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise OutputError(f"{what} is not a plain numeric array ({exc})") from None
            if not isinstance(value, np.ndarray):  # an .npz archive under an .npy name
                value.close()
                raise OutputError(f"{what} is not a plain numeric array (a .npz archive)")
    except ReadbackError as exc:
        raise OutputError(str(exc)) from None
    if value.dtype.kind not in "biuf":
        raise OutputError(f"{what} has dtype {value.dtype}; save real numbers")
    return value


#: A reply's file names: plain names inside the worker's output folder, nothing else.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


def reply_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object of the reply, bounded: at most ``MAX_REPLY_DEPTH`` levels
    deep and ``MAX_REPLY_VALUES`` values (so nothing downstream recurses out of stack)."""
    value = _object(value, what)
    _bounded(value, what)
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OutputError(f"the reply's {what} is {type(value).__name__}, not an object")
    return value


def _bounded(value: Any, what: str) -> None:
    """Refuse JSON nested deeper than MAX_REPLY_DEPTH or holding more than
    MAX_REPLY_VALUES values; walked with a stack of its own, so the check cannot recurse."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_REPLY_VALUES:
            raise OutputError(
                f"the reply's {what} holds more than {MAX_REPLY_VALUES} values; "
                "keep Detection.extra small"
            )
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth >= MAX_REPLY_DEPTH:
            raise OutputError(
                f"the reply's {what} is nested more than {MAX_REPLY_DEPTH} levels deep; "
                "flatten Detection.extra"
            )
        stack.extend((child, depth + 1) for child in children)


def reply_file(result: Any, key: str, folder: Path | Inside) -> Inside:
    """The output file named by ``result[key]``: a plain name in ``folder`` (a plain path
    is a folder the worker made in one the harness made: ``Inside.written``)."""
    name = _object(result, "result").get(key)
    if not isinstance(name, str) or not _FILE_NAME.match(name):
        raise OutputError(f"the reply's {key!r} is {name!r}, not a file name in the output folder")
    return as_inside(folder) / name
