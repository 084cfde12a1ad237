"""Unpacking a course's hand-ins safely: a folder, a ``.zip`` or a ``.tar.gz`` / ``.tgz`` /
``.tar`` per student, each into a folder of its own and nowhere else.

Archives are untrusted. Every member is checked before a byte is written: no absolute
path, no ``..``, no link (symbolic or hard), no device, FIFO or socket, at most
``Caps.files`` files and ``Caps.total_bytes`` bytes unpacked, and a zip member may not
expand more than ``Caps.ratio`` times its compressed size (a zip bomb). Sizes are counted
while writing too, so a member that lies about its size is stopped. Nested archives are
not opened: they stay files. The hand-in must hold exactly one ``submission.toml``, at its
top or in its one top-level folder. A folder hand-in is copied under the same rules
(links are refused, not followed). Any breach is an ``UnpackError`` with the reason, that
student's failure alone.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.errors import HarnessError

#: File name endings of the archives a hand-in may be.
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")
MANIFEST = "submission.toml"


class UnpackError(HarnessError):
    """A hand-in that cannot be unpacked safely (its student's failure, with the reason)."""


@dataclass(frozen=True)
class Caps:
    files: int = 2000
    total_bytes: int = 64 << 20
    ratio: float = 200.0  # unpacked size over compressed size, per zip member


def student_id(path: Path) -> str:
    """The student (or team) id a hand-in is named by: its name without the archive ending."""
    name = path.name
    for end in ARCHIVES:
        if name.lower().endswith(end):
            return name[: -len(end)]
    return name


def _safe_parts(name: str, source: Path) -> tuple[str, ...]:
    """The member's path parts, refused when absolute or climbing out."""
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if path.is_absolute() or posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnpackError(f"member {name!r} has an absolute path", path=source, fix=_FIX)
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if ".." in parts:
        raise UnpackError(f"member {name!r} climbs out of the hand-in (..)", path=source, fix=_FIX)
    return parts


_FIX = "hand in a plain .zip or .tar.gz of the submission folder (files only, no links)"


class _Budget:
    def __init__(self, caps: Caps, source: Path) -> None:
        self.caps, self.source = caps, source
        self.files = 0
        self.bytes = 0

    def file(self) -> None:
        self.files += 1
        if self.files > self.caps.files:
            raise UnpackError(
                f"more than {self.caps.files} files", path=self.source, fix="hand in fewer files"
            )

    def add(self, n: int, limit: int | None = None, written: int = 0) -> None:
        self.bytes += n
        if self.bytes > self.caps.total_bytes:
            raise UnpackError(
                f"unpacks to more than {self.caps.total_bytes >> 20} MiB",
                path=self.source,
                fix="leave data sets and model files out of the hand-in",
            )
        if limit is not None and written > limit:
            raise UnpackError(
                f"a member expands more than {self.caps.ratio:g} times (a zip bomb?)",
                path=self.source,
                fix=_FIX,
            )


def _copy_stream(src, dest: Path, budget: _Budget, limit: int | None = None) -> None:  # noqa: ANN001
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dest, "xb") as out:
        while chunk := src.read(1 << 16):
            written += len(chunk)
            budget.add(len(chunk), limit, written)
            out.write(chunk)


def _unzip(source: Path, dest: Path, caps: Caps) -> None:
    budget = _Budget(caps, source)
    try:
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                parts = _safe_parts(info.filename, source)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnpackError(f"member {info.filename!r} is a link", path=source, fix=_FIX)
                budget.file()  # folders count too: a million empty ones are a bomb as well
                if info.is_dir() or not parts:
                    continue
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no Unix type recorded
                    raise UnpackError(
                        f"member {info.filename!r} is not a regular file", path=source, fix=_FIX
                    )
                limit = int(max(info.compress_size, 1) * caps.ratio) + (64 << 10)
                with zf.open(info) as src:
                    _copy_stream(src, dest.joinpath(*parts), budget, limit)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise UnpackError(f"not a readable zip archive ({exc})", path=source, fix=_FIX) from None
    except FileExistsError as exc:
        raise UnpackError(f"member {exc.filename} appears twice", path=source, fix=_FIX) from None
    except OSError as exc:  # a member under a path another member holds as a file
        raise UnpackError(f"cannot unpack a member ({exc})", path=source, fix=_FIX) from None


def _untar(source: Path, dest: Path, caps: Caps) -> None:
    budget = _Budget(caps, source)
    try:
        with tarfile.open(source, mode="r:*") as tf:
            for member in tf:
                parts = _safe_parts(member.name, source)
                if member.issym() or member.islnk():
                    raise UnpackError(f"member {member.name!r} is a link", path=source, fix=_FIX)
                budget.file()
                if member.isdir() or not parts:
                    continue
                if not member.isreg():
                    raise UnpackError(
                        f"member {member.name!r} is a device, FIFO or other special file",
                        path=source,
                        fix=_FIX,
                    )
                src = tf.extractfile(member)
                if src is None:
                    raise UnpackError(f"member {member.name!r} has no data", path=source, fix=_FIX)
                with src:
                    _copy_stream(src, dest.joinpath(*parts), budget)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileExistsError):
            raise UnpackError(
                f"member {exc.filename} appears twice", path=source, fix=_FIX
            ) from None
        raise UnpackError(f"not a readable tar archive ({exc})", path=source, fix=_FIX) from None


def _copy_folder(source: Path, dest: Path, caps: Caps) -> None:
    budget = _Budget(caps, source)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise UnpackError(f"{rel} is a link", path=source, fix="hand in files, not links")
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise UnpackError(f"{rel} is not a regular file", path=source, fix=_FIX)
        budget.file()
        with open(path, "rb") as src:
            _copy_stream(src, dest / rel, budget)


def submission_root(folder: Path, source: Path) -> Path:
    """The folder holding the hand-in's one submission.toml: its top, or its one folder."""
    found = sorted(p for p in folder.rglob(MANIFEST) if p.is_file())
    if not found:
        nested = sorted(p.name for p in folder.rglob("*") if p.name.lower().endswith(ARCHIVES))
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


def unpack(source: Path, dest: Path, caps: Caps | None = None) -> Path:
    """Unpack (or copy) the hand-in ``source`` into the new folder ``dest``; the folder of
    its submission. On any breach ``dest`` is removed and UnpackError raised."""
    caps = caps or Caps()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        name = source.name.lower()
        if source.is_symlink():
            raise UnpackError("the hand-in is a link", path=source, fix="hand in a file or folder")
        if source.is_dir():
            _copy_folder(source, dest, caps)
        elif name.endswith(".zip"):
            _unzip(source, dest, caps)
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            _untar(source, dest, caps)
        else:
            raise UnpackError("not a folder, .zip, .tar.gz, .tgz or .tar", path=source, fix=_FIX)
        return submission_root(dest, source)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
