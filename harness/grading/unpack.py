"""Unpacking a course's hand-ins safely: a folder or an archive per student (every format
the standard library reads: ``.zip``, ``.tar``, ``.tar.gz`` / ``.tgz``, ``.tar.bz2`` /
``.tbz2``, ``.tar.xz`` / ``.txz``), each into a folder of its own and nowhere else.

Archives are untrusted. A hand-in is opened only when it is a regular file (never through
a link, never a FIFO or device: ``harness.submission.files``), and only below a size.
Every member is checked before a byte is written: a printable UTF-8 name that is not
empty, no absolute path, no ``..``, no link (symbolic or hard), no device, FIFO or socket,
no encryption, at most ``Caps.files`` files and ``Caps.total_bytes`` bytes unpacked, and a
zip member may not expand more than ``Caps.ratio`` times its compressed size (a zip bomb).
Sizes are counted while writing too, so a member that lies about its size is stopped, and
unpacking stops after ``Caps.seconds``. A damaged or truncated archive is refused, also
when the damage lies after the last member. Nested archives are not opened: they stay
files. The hand-in must hold exactly one ``submission.toml``, at its top or in its one
top-level folder. A folder hand-in is copied under the same rules (links are refused, not
followed). Any breach is an ``UnpackError`` whose reason names the member, never a path of
the grading folder: that student's failure alone.
"""

from __future__ import annotations

import itertools
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from harness.errors import HarnessError
from harness.grading.handins import FORMATS, READ, REFUSED_FORMATS, ending
from harness.report.encode import plain
from harness.submission.files import NotRegularFile, kind_of, open_regular

MANIFEST = "submission.toml"
#: Characters no member name may hold: controls, bidi overrides, surrogates (not UTF-8).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
#: Zip's general-purpose flags: bit 0 encrypted, bit 6 strong encryption, bit 11 UTF-8 name.
_ZIP_ENCRYPTED, _ZIP_STRONG, _ZIP_UTF8 = 0x1, 0x40, 0x800


class UnpackError(HarnessError):
    """A hand-in that cannot be unpacked safely (its student's failure, with the reason)."""


@dataclass(frozen=True)
class Caps:
    files: int = 2000
    total_bytes: int = 64 << 20
    ratio: float = 200.0  # unpacked size over compressed size, per zip member
    archive_bytes: int = 80 << 20  # the archive file itself
    seconds: float = 120.0  # wall clock to unpack one hand-in


_FIX = "hand in a plain .zip or .tar.gz of the submission folder (files only, no links)"


def _refuse(problem: str, source: Path, fix: str = _FIX) -> UnpackError:
    return UnpackError(problem, path=source, fix=fix)


def _safe_parts(name: str, source: Path) -> tuple[str, ...]:
    """The member's path parts, refused when empty, unprintable, absolute or climbing out."""
    if _UNPRINTABLE.search(name):
        why = "is not UTF-8" if re.search("[\ud800-\udfff]", name) else "has a control character"
        raise _refuse(f"member name {name!r} {why}", source)
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if path.is_absolute() or posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise _refuse(f"member {name!r} has an absolute path", source)
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if ".." in parts:
        raise _refuse(f"member {name!r} climbs out of the hand-in (..)", source)
    if not name:
        raise _refuse("a member has an empty name", source)
    return parts


class _Budget:
    """What a hand-in may take: files, bytes and time, counted while unpacking."""

    def __init__(self, caps: Caps, source: Path) -> None:
        self.caps, self.source = caps, source
        self.files = 0
        self.bytes = 0
        self.deadline = time.monotonic() + caps.seconds

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _refuse(
                f"unpacking took more than {self.caps.seconds:g} s",
                self.source,
                "hand in fewer and smaller files",
            )

    def file(self) -> None:
        self.tick()
        self.files += 1
        if self.files > self.caps.files:
            raise _refuse(f"more than {self.caps.files} files", self.source, "hand in fewer files")

    def add(self, n: int, limit: int | None = None, written: int = 0) -> None:
        self.tick()
        self.bytes += n
        if self.bytes > self.caps.total_bytes:
            raise _refuse(
                f"unpacks to more than {self.caps.total_bytes >> 20} MiB",
                self.source,
                "leave data sets and model files out of the hand-in",
            )
        if limit is not None and written > limit:
            raise _refuse(f"a member expands more than {self.caps.ratio:g} times (a zip bomb?)",
                          self.source)  # fmt: skip


def _copy_stream(
    src: IO[bytes], dest: Path, name: str, budget: _Budget, limit: int | None = None
) -> None:
    """One member's bytes into ``dest``, counted; errors name the member, not ``dest``."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = open(dest, "xb")  # noqa: SIM115 - closed below
    except FileExistsError:
        raise _refuse(f"member {name!r} appears twice", budget.source) from None
    except OSError as exc:  # under a path another member holds as a file; a name too long
        raise _refuse(f"cannot unpack member {name!r} ({exc.strerror})", budget.source) from None
    written = 0
    with out:
        while chunk := src.read(1 << 16):
            written += len(chunk)
            budget.add(len(chunk), limit, written)
            out.write(chunk)


#: What reading a damaged or truncated archive raises from the standard library.
_DAMAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
    OSError,  # gzip.BadGzipFile, bz2's "Invalid data stream"
    ValueError,
    OverflowError,
    NotImplementedError,  # a zip compression method the standard library lacks
)


def _zip_name(info: zipfile.ZipInfo, source: Path) -> str:
    """A zip member's name as UTF-8: names without zip's UTF-8 flag are read as UTF-8 when
    their bytes are, and refused when not (zipfile would show them as cp437)."""
    if info.flag_bits & _ZIP_UTF8:
        return info.filename
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:  # a name from zip's Unicode path extra field
        return info.filename
    try:
        return info.filename if raw.isascii() else raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(f"member name {info.filename!r} is not UTF-8", source) from None


def _unzip(fh: IO[bytes], source: Path, dest: Path, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                name = _zip_name(info, source)
                parts = _safe_parts(name, source)
                if info.flag_bits & (_ZIP_ENCRYPTED | _ZIP_STRONG):
                    raise _refuse(
                        f"member {name!r} is encrypted (a password-protected zip)",
                        source,
                        "hand in a zip without a password",
                    )
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise _refuse(f"member {name!r} is a link", source)
                budget.file()  # folders count too: a million empty ones are a bomb as well
                if name.endswith("/") or not parts:
                    continue
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no Unix type recorded
                    raise _refuse(f"member {name!r} is not a regular file", source)
                limit = int(max(info.compress_size, 1) * budget.caps.ratio) + (64 << 10)
                with zf.open(info) as src:
                    _copy_stream(src, dest.joinpath(*parts), name, budget, limit)
    except UnicodeDecodeError:  # zip's UTF-8 flag on a name that is not UTF-8
        raise _refuse("a member name is not UTF-8", source) from None
    except RuntimeError as exc:  # zipfile: "password required", or a flag it refuses
        raise _refuse(f"not a readable zip archive ({exc})", source) from None
    except _DAMAGE as exc:
        raise _refuse(f"not a readable zip archive, or a damaged one ({_why(exc)})",
                      source) from None  # fmt: skip


def _why(exc: BaseException) -> str:
    """An exception's message as one line without a path (a damaged archive's reason)."""
    text = getattr(exc, "strerror", None) if isinstance(exc, OSError) else None
    text = str(text or exc or type(exc).__name__)
    if text.startswith("file could not be opened successfully"):  # tarfile tried every method
        text = "no tar stream, compressed or not, could be read from it"
    return plain(text)[:300]


def _tar_tail(tf: tarfile.TarFile, source: Path, budget: _Budget) -> None:
    """After the last member: nothing but zeros to the end, and a compressed stream that
    ends soundly. tarfile stops quietly at a damaged header; this refuses it."""
    stream = tf.fileobj
    assert stream is not None
    stream.seek(tf.offset)
    while chunk := stream.read(1 << 16):
        budget.add(len(chunk))
        if chunk.count(0) != len(chunk):
            raise _refuse("a damaged tar archive (data after the last readable member)", source)


def _untar(fh: IO[bytes], source: Path, dest: Path, budget: _Budget) -> None:
    try:
        with tarfile.open(fileobj=fh, mode="r:*", encoding="utf-8", errors="surrogateescape") as tf:
            for member in tf:
                parts = _safe_parts(member.name, source)
                if member.issym() or member.islnk():
                    raise _refuse(f"member {member.name!r} is a link", source)
                budget.file()
                if member.isdir() or not parts:
                    continue
                if not member.isreg():
                    raise _refuse(
                        f"member {member.name!r} is a device, FIFO or other special file", source
                    )
                src = tf.extractfile(member)
                if src is None:
                    raise _refuse(f"member {member.name!r} has no data", source)
                with src:
                    _copy_stream(src, dest.joinpath(*parts), member.name, budget)
            _tar_tail(tf, source, budget)
    except _DAMAGE as exc:
        raise _refuse(f"not a readable tar archive, or a damaged or truncated one "
                      f"({_why(exc)})", source) from None  # fmt: skip


def _copy_folder(source: Path, dest: Path, budget: _Budget) -> None:
    """A folder hand-in, copied file by file: links and special files refused, never
    opened; names must be printable UTF-8."""
    stack = [Path()]
    while stack:
        rel_dir = stack.pop()
        budget.tick()
        try:
            with os.scandir(source / rel_dir) as listing:  # one more than may be copied
                first = itertools.islice(listing, budget.caps.files + 1 - budget.files)
                entries = sorted(first, key=lambda e: e.name)
        except OSError as exc:
            raise _refuse(f"folder {rel_dir} cannot be read ({_why(exc)})", source) from None
        for entry in entries:
            rel = rel_dir / entry.name
            _safe_parts(rel.as_posix(), source)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise _refuse(f"{rel} is a link", source, "hand in files, not links")
            budget.file()
            if stat.S_ISDIR(mode):
                stack.append(rel)
                continue
            if not stat.S_ISREG(mode):
                raise _refuse(f"{rel} is {kind_of(mode)}, not a regular file", source)
            try:
                src = open_regular(source / rel)
            except OSError as exc:
                raise _refuse(f"{rel} cannot be read ({_why(exc)})", source) from None
            with src:
                _copy_stream(src, dest / rel, rel.as_posix(), budget)


def submission_root(folder: Path, source: Path) -> Path:
    """The folder holding the hand-in's one submission.toml: its top, or its one folder."""
    found = sorted(p for p in folder.rglob(MANIFEST) if p.is_file())
    if not found:
        nested = sorted(p.name for p in folder.rglob("*") if ending(p.name) in FORMATS)
        hint = f" (archives inside are not opened: {', '.join(nested)})" if nested else ""
        raise UnpackError(
            f"no {MANIFEST} in the hand-in{hint}",
            path=source,
            fix=f"put {MANIFEST} at the top of the hand-in (submissions/template shows one)",
        )
    if len(found) > 1:
        rels = ", ".join(str(p.relative_to(folder)) for p in found)
        raise UnpackError(
            f"{len(found)} {MANIFEST} files ({rels})", path=source, fix="hand in one submission"
        )
    root = found[0].parent
    if root != folder and root.parent != folder:
        raise UnpackError(
            f"{MANIFEST} is nested too deep ({found[0].relative_to(folder)})",
            path=source,
            fix=f"put {MANIFEST} at the top of the hand-in or of its one folder",
        )
    return root


def _format_of(source: Path, caps: Caps) -> str:
    """``zip`` or ``tar`` for a regular file named like an archive the harness reads; any
    other hand-in is refused, naming what it is."""
    mode = source.lstat().st_mode
    if stat.S_ISLNK(mode):
        raise _refuse("the hand-in is a symbolic link", source, "hand in a file or folder")
    if not stat.S_ISREG(mode):
        raise _refuse(f"the hand-in is {kind_of(mode)}", source, f"hand in {READ}")
    end = ending(source.name)
    if end in REFUSED_FORMATS:
        raise _refuse(
            f"a {REFUSED_FORMATS[end]} archive ({end}) is not a format the harness reads",
            source,
            f"hand in {READ}",
        )
    if end is None:
        raise _refuse(f"not {READ}", source, f"hand in {READ}")
    size = source.lstat().st_size
    if size > caps.archive_bytes:
        raise _refuse(f"the archive is larger than {caps.archive_bytes >> 20} MiB", source,
                      "leave data sets and model files out of the hand-in")  # fmt: skip
    return FORMATS[end]


def unpack(source: Path, dest: Path, caps: Caps | None = None) -> Path:
    """Unpack (or copy) the hand-in ``source`` into the new folder ``dest``; the folder of
    its submission. On any breach ``dest`` is removed and UnpackError raised."""
    caps = caps or Caps()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    budget = _Budget(caps, source)
    try:
        try:
            if stat.S_ISDIR(source.lstat().st_mode):
                _copy_folder(source, dest, budget)
                return submission_root(dest, source)
            kind = _format_of(source, caps)
            with open_regular(source) as fh:
                (_unzip if kind == "zip" else _untar)(fh, source, dest, budget)
        except NotRegularFile as exc:  # swapped for a FIFO or link since it was looked at
            raise _refuse(f"the hand-in is {exc.strerror}", source, f"hand in {READ}") from None
        except FileNotFoundError:
            raise _refuse("the hand-in vanished while it was read", source) from None
        return submission_root(dest, source)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
