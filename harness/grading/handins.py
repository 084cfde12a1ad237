"""What a folder of hand-ins holds: every entry is one student's hand-in, named by the
student id (a folder, or an archive of a format the standard library reads); its time.

Nothing here opens a hand-in: entries are looked at with ``lstat`` (a link is not
followed, a FIFO never opened), so a hostile entry costs its student alone, later, with a
reason (``harness.grading.unpack``). An entry in a format the harness cannot read (a
``.rar``, a ``.tar.zst``) or that is no archive at all is still a hand-in: its student
gets the refusal, not "no hand-in".
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import stat
from pathlib import Path

from harness.errors import HarnessError

#: File name endings of the archives a hand-in may be, by the format that reads them.
FORMATS = {
    ".zip": "zip",
    ".tar": "tar",
    ".tar.gz": "tar",
    ".tgz": "tar",
    ".tar.bz2": "tar",
    ".tbz2": "tar",
    ".tbz": "tar",
    ".tar.xz": "tar",
    ".txz": "tar",
}
ARCHIVES = tuple(sorted(FORMATS, key=len, reverse=True))
#: Archive formats the standard library cannot read: a hand-in in one is refused, naming it.
REFUSED_FORMATS = {
    ".rar": "RAR",
    ".7z": "7-Zip",
    ".tar.zst": "Zstandard",
    ".tzst": "Zstandard",
    ".zst": "Zstandard",
    ".tar.lz": "lzip",
    ".lz": "lzip",
    ".tar.lzma": "LZMA",
    ".lzma": "LZMA",
    ".tar.z": "compress (.Z)",
    ".gz": "gzip of a single file",
    ".bz2": "bzip2 of a single file",
    ".xz": "xz of a single file",
    ".cab": "CAB",
    ".arj": "ARJ",
    ".lzh": "LHA",
    ".iso": "ISO image",
    ".dmg": "disk image",
}
#: The formats, as a refusal lists them.
READ = "a folder, .zip, .tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .tar.xz or .txz"
#: Entries of a folder of hand-ins or of a folder hand-in looked at, at most (a folder of a
#: million files must not take minutes before anything is refused).
MAX_ENTRIES = 100_000


def ending(name: str) -> str | None:
    """The archive ending of a file name (read or refused), lower-case; None for none."""
    lower = name.lower()
    known = [e for e in (*FORMATS, *REFUSED_FORMATS) if lower.endswith(e) and len(lower) > len(e)]
    return max(known, key=len, default=None)


def student_id(path: Path) -> str:
    """The student (or team) id a hand-in is named by: its name without the archive ending."""
    end = ending(path.name)
    return path.name[: -len(end)] if end else path.name


def discover(folder: Path) -> list[Path]:
    """The hand-ins in ``folder``: every entry but hidden ones, whatever its kind (a link,
    a FIFO and a file of another format are hand-ins refused later, with the reason)."""
    if not folder.is_dir():
        raise HarnessError(
            "no such folder of hand-ins", path=folder, fix="give the folder of hand-ins"
        )
    with os.scandir(folder) as listing:
        names = sorted(e.name for e in itertools.islice(listing, MAX_ENTRIES + 1))
    if len(names) > MAX_ENTRIES:
        raise HarnessError(
            f"the folder holds more than {MAX_ENTRIES} entries",
            path=folder,
            fix="give the folder that holds one hand-in per student",
        )
    found = [folder / n for n in names if not n.startswith(".")]
    if not found:
        raise HarnessError(
            f"the folder holds no hand-in ({READ})",
            path=folder,
            fix="put one folder or archive per student in it, named by the student id",
        )
    return found


def handed_in(source: Path, entries: int = 2000) -> dt.datetime | None:
    """A hand-in's time (UTC): an archive's modification time, a folder's newest file's
    among its first ``entries`` (links are not followed); None when that time is not a
    date (a file time set to the year 300,000)."""
    top = source.lstat()
    newest, seen = top.st_mtime, 0
    stack = [source] if stat.S_ISDIR(top.st_mode) else []
    files: list[float] = []
    while stack and seen <= entries:
        try:
            with os.scandir(stack.pop()) as listing:
                found = list(itertools.islice(listing, entries + 1 - seen))
        except OSError:
            continue  # unpacking says why the folder cannot be read
        for entry in found:
            seen += 1
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(st.st_mode):
                files.append(st.st_mtime)
    try:
        return dt.datetime.fromtimestamp(max(files, default=newest), dt.timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None
