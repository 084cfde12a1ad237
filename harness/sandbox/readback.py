"""Reading back what a sandbox wrote: real files and folders inside its folder, nothing else.

A sandboxed worker writes into a folder the harness made (its scratch folder, bound into
the sandbox), and the harness reads back from it: a task's output files, a learned
detector's configure output, an attack hand-in's poisoned set, an exported GoodNet, the
answers of a one-shot check. Everything below that folder is the sandbox's to shape: it
can replace a file, or the task's output folder itself, by a symbolic link to a host path
(the zoo's object store with every model's truth, the results store), by a FIFO that
blocks a reader, by a device, or by a hard link. So every read-back goes through here:

- a path is a folder the harness made (``Inside.root``, trusted) and the plain names
  below it (``Inside.parts``, the sandbox's); each name is opened relative to the one
  before with ``O_NOFOLLOW``, so a link anywhere on the path is refused, and what was
  checked is what is read (no window between a check and the open);
- a file must be a regular file with one link: it is checked with ``lstat`` before it is
  opened (a FIFO or a device is never opened), opened ``O_NONBLOCK | O_NOFOLLOW``, and
  checked again with ``fstat`` on what was opened;
- a folder is copied as regular files and folders only: any other entry (a link, a FIFO,
  a socket, a device, a hard-linked file) refuses the whole copy.

Each refusal is a ``ReadbackError`` whose message is one line naming the entry, which the
caller turns into that task's (or that configure step's) failure.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: Flags of every open below a trusted folder.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
#: A copied folder's limits: far beyond an honest configure output, far below what would
#: stall the harness (the scratch cap bounds the bytes).
MAX_ENTRIES = 100_000
MAX_DEPTH = 64


class ReadbackError(Exception):
    """A path inside a sandbox's folder that the harness refuses to read (one line)."""


@dataclass(frozen=True)
class Inside:
    """A path below a folder the harness made for a sandbox: ``root`` is the harness's
    own (opened as it is), ``parts`` the plain names below it (each the sandbox's, each
    checked)."""

    root: Path
    parts: tuple[str, ...] = ()

    @classmethod
    def written(cls, path: Path) -> Inside:
        """``path`` as a name the sandbox wrote in a folder the harness made (its parent):
        what a plain path handed to the read-back helpers means."""
        return cls(path.parent, (path.name,))

    def __truediv__(self, name: str) -> Inside:
        return Inside(self.root, (*self.parts, name))

    @property
    def path(self) -> Path:
        """The host path (for messages and for folders the harness itself made)."""
        return self.root.joinpath(*self.parts)

    @property
    def label(self) -> str:
        """The path below the trusted folder, as messages name it."""
        return "/".join(self.parts) or "."


def as_inside(where: Path | Inside) -> Inside:
    """``where`` as an ``Inside``: a plain path is a name the sandbox wrote in its parent."""
    return where if isinstance(where, Inside) else Inside.written(where)


def _plain(name: str, what: str, where: Inside) -> str:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ReadbackError(f"{what}: {where.label!r} is not a plain path inside the folder")
    return name


def _kind(mode: int) -> str:
    """What an entry the read-back refuses is, and why."""
    if stat.S_ISLNK(mode):
        return "a symbolic link: links are refused"
    if stat.S_ISFIFO(mode):
        return "a FIFO: only regular files are read back"
    if stat.S_ISSOCK(mode):
        return "a socket: only regular files are read back"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device: only regular files are read back"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISREG(mode):
        return "a file, not a folder"
    return "not a regular file: only regular files are read back"


def _lstat(name: str, dir_fd: int, what: str, label: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise ReadbackError(f"{what}: {label} is missing") from None
    except OSError as exc:
        raise ReadbackError(f"{what}: {label} cannot be read ({exc.strerror})") from None


def _open_folder_at(dir_fd: int, name: str, what: str, label: str) -> int:
    """The fd of folder ``name`` in ``dir_fd``: refused unless it is a real folder."""
    st = _lstat(name, dir_fd, what, label)
    if not stat.S_ISDIR(st.st_mode):
        raise ReadbackError(f"{what}: {label} is {_kind(st.st_mode)}")
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:  # swapped for a link or a file since the lstat
        raise ReadbackError(f"{what}: {label} changed while it was read ({exc.strerror})") from None
    if not _same(os.fstat(fd), st):
        os.close(fd)
        raise ReadbackError(f"{what}: {label} changed while it was read")
    return fd


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open_file_at(dir_fd: int, name: str, what: str, label: str, max_bytes: int | None) -> int:
    """The fd of regular file ``name`` in ``dir_fd``: refused unless it is a regular file
    with one link (and at most ``max_bytes`` long)."""
    st = _lstat(name, dir_fd, what, label)
    if not stat.S_ISREG(st.st_mode):
        raise ReadbackError(f"{what}: {label} is {_kind(st.st_mode)}")
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise ReadbackError(f"{what}: {label} changed while it was read ({exc.strerror})") from None
    try:
        got = os.fstat(fd)
        if not stat.S_ISREG(got.st_mode) or not _same(got, st):
            raise ReadbackError(f"{what}: {label} changed while it was read")
        if got.st_nlink > 1:
            raise ReadbackError(
                f"{what}: {label} has {got.st_nlink} hard links: hard-linked files are refused"
            )
        if max_bytes is not None and got.st_size > max_bytes:
            raise ReadbackError(f"{what}: {label} is larger than {max_bytes} bytes")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def open_folder(where: Inside, what: str) -> Iterator[int]:
    """An fd of the folder ``where``, every name on its path a real folder (no link)."""
    try:
        fd = os.open(where.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ReadbackError(
            f"{what}: the harness's folder {where.root} is gone ({exc.strerror})"
        ) from None
    try:
        for i, name in enumerate(where.parts):
            label = "/".join(where.parts[: i + 1])
            nxt = _open_folder_at(fd, _plain(name, what, where), what, label)
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def open_file(where: Path | Inside, what: str, max_bytes: int | None = None) -> BinaryIO:
    """The regular file ``where``, open for reading: no link on its path, one link to it,
    at most ``max_bytes`` long."""
    where = as_inside(where)
    if not where.parts:
        raise ReadbackError(f"{what}: no file named")
    for part in where.parts:
        _plain(part, what, where)
    parent = Inside(where.root, where.parts[:-1])
    name = _plain(where.parts[-1], what, where)
    with open_folder(parent, what) as dir_fd:
        fd = _open_file_at(dir_fd, name, what, where.label, max_bytes)
    return os.fdopen(fd, "rb")


def copy_file(where: Path | Inside, dest: Path, what: str, max_bytes: int | None = None) -> None:
    """Copy the regular file ``where`` (as ``open_file`` reads it) to ``dest``."""
    with open_file(where, what, max_bytes) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def copy_folder(where: Inside, dest: Path, what: str) -> int:
    """Copy the folder ``where`` to ``dest`` (which must not exist): regular files and
    folders only, any other entry refusing the whole copy. How many files were copied."""
    with open_folder(where, what) as fd:
        dest.mkdir(parents=True)
        return _copy_into(fd, dest, where.label, what, 0, [0])


def _copy_into(dir_fd: int, dest: Path, label: str, what: str, depth: int, count: list[int]) -> int:
    if depth > MAX_DEPTH:
        raise ReadbackError(f"{what}: {label} is nested more than {MAX_DEPTH} folders deep")
    copied = 0
    with os.scandir(dir_fd) as entries:
        names = sorted(e.name for e in entries)
    for name in names:
        count[0] += 1
        if count[0] > MAX_ENTRIES:
            raise ReadbackError(f"{what}: more than {MAX_ENTRIES} entries")
        here = f"{label}/{name}" if label != "." else name
        st = _lstat(name, dir_fd, what, here)
        if stat.S_ISDIR(st.st_mode):
            sub = _open_folder_at(dir_fd, name, what, here)
            try:
                (dest / name).mkdir()
                copied += _copy_into(sub, dest / name, here, what, depth + 1, count)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            fd = _open_file_at(dir_fd, name, what, here, None)
            with os.fdopen(fd, "rb") as src, open(dest / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            copied += 1
        else:
            raise ReadbackError(f"{what}: {here} is {_kind(st.st_mode)}")
    return copied
