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


class OutputError(Exception):
    """A submission returned something outside the contract."""


def load_array(scratch_file: Path, what: str, max_bytes: int = 256 << 20) -> np.ndarray:
    """One .npy array the worker wrote: refused when missing, a link, too big, or not a plain
    array of booleans, integers or floats."""
    if not scratch_file.is_file() or scratch_file.is_symlink():
        raise OutputError(f"{what} file is missing")
    if scratch_file.stat().st_size > max_bytes:
        raise OutputError(f"{what} is larger than {max_bytes} bytes")
    try:
        value = np.load(scratch_file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise OutputError(f"{what} is not a plain numeric array ({exc})") from None
    if not isinstance(value, np.ndarray):  # an .npz archive under an .npy name
        value.close()
        raise OutputError(f"{what} is not a plain numeric array (a .npz archive)")
    if value.dtype.kind not in "biuf":
        raise OutputError(f"{what} has dtype {value.dtype}; save real numbers")
    return value


#: A reply's file names: plain names inside the worker's output folder, nothing else.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


def reply_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object of the reply."""
    if not isinstance(value, dict):
        raise OutputError(f"the reply's {what} is {type(value).__name__}, not an object")
    return value


def reply_file(result: Any, key: str, folder: Path) -> Path:
    """The output file named by ``result[key]``: a plain name in ``folder``."""
    name = reply_object(result, "result").get(key)
    if not isinstance(name, str) or not _FILE_NAME.match(name):
        raise OutputError(f"the reply's {key!r} is {name!r}, not a file name in the output folder")
    return folder / name
