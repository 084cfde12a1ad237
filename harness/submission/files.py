"""Opening untrusted files without blocking and reading them within a size.

A hand-in, a manifest or a roster may be a FIFO, a device or a link to one: a plain
``open()`` of a FIFO waits for a writer forever, and a read of a device never ends. Here a
file is opened with ``O_NONBLOCK`` (an open that cannot wait) and ``O_NOFOLLOW`` (a link is
refused, not followed), and used only once ``fstat`` shows a regular file; a read stops at
a size given in advance.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path is a link, a FIFO, a device, a socket or a folder, not a regular file."""


def kind_of(mode: int) -> str:
    """What a file is, in words (for a refusal that names it)."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading when it is a regular file (not through a link); any
    other kind is a NotRegularFile naming it. Never blocks."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise NotRegularFile(errno.ELOOP, "a symbolic link", str(path)) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, f"{kind_of(mode)}, not a regular file", str(path))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``; an OSError when it holds more than ``limit``."""
    with open_regular(path) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data
