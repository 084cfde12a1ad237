"""A course's folder of hand-ins, hostile and unusual ones among valid copies of
submissions/null, for `harness grade` (issue 42: "a bad hand-in costs only its owner").

Each CLASSES entry writes one hand-in for a student id into the folder and says what
grading must make of it: scored, or refused with a reason containing some words. The
valid ones are copies of submissions/null in every archive format (identical content runs
once); ``task_error`` passes its check and then fails its graded tasks with an error made
to inject (terminal escapes, HTML, a newline forging a heading, a formula).
``write_roster`` gives names that inject and one absurd extension.

tests/test_grade_hostile.py grades a mix of 12 in `make test`; the 40 of the issue's
check: ``python tests/handin_factory.py DEST --count 40`` (then `harness grade DEST/handins
--rubric DEST/rubric.toml --roster DEST/roster.csv --profile toy --out DEST/out`).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NULL = REPO / "submissions" / "null"
#: What an injecting error says: terminal escapes, raw HTML, a forged Markdown line, a
#: spreadsheet formula, a bidi override.
PAYLOAD = (
    "\x1b[2J\x1b]0;pwned\x07<script>alert(1)</script><img src=x onerror=alert(2)>"
    '\n## Total: 100 of 100 points\n=HYPERLINK("http://evil")|\u202eexe.txt\r\n- [x](javascript:1)'
)


@dataclass(frozen=True)
class Expect:
    """What grading makes of one hand-in: ``says`` is in its reason when it is refused."""

    entry: str  # the hand-in's file or folder name
    graded: bool
    says: str = ""


# -- archives of a folder ---------------------------------------------------------------------
def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _zip_of(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in _files(folder):
            zf.write(f, prefix + f.relative_to(folder).as_posix())
    return dest


def _tar_of(folder: Path, dest: Path, mode: str, prefix: str = "") -> Path:
    with tarfile.open(dest, mode) as tf:
        for f in _files(folder):
            tf.add(f, prefix + f.relative_to(folder).as_posix())
    return dest


def _null_copy(dest: Path, extra: str = "") -> Path:
    shutil.copytree(NULL, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if extra:
        with open(dest / "submission.py", "a") as fh:
            fh.write(extra)
    return dest


def _manifest(extra: str = "") -> bytes:
    return ((NULL / "submission.toml").read_text() + extra).encode()


def _zip_members(dest: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dest


def _null_members(manifest: bytes | None = None) -> dict[str, bytes]:
    return {
        "submission.toml": manifest if manifest is not None else _manifest(),
        "submission.py": (NULL / "submission.py").read_bytes(),
    }


# -- valid hand-ins ---------------------------------------------------------------------------
def valid_folder(folder: Path, sid: str) -> Expect:
    _null_copy(folder / sid)
    return Expect(sid, True)


def valid_zip(folder: Path, sid: str) -> Expect:
    return Expect(_zip_of(NULL, folder / f"{sid}.zip").name, True)


def valid_tgz(folder: Path, sid: str) -> Expect:
    return Expect(_tar_of(NULL, folder / f"{sid}.tgz", "w:gz", "my-defense/").name, True)


def valid_tar_bz2(folder: Path, sid: str) -> Expect:
    return Expect(_tar_of(NULL, folder / f"{sid}.tar.bz2", "w:bz2").name, True)


def valid_tar_xz(folder: Path, sid: str) -> Expect:
    """A .tar.xz: silently skipped ("no hand-in") before issue 42."""
    return Expect(_tar_of(NULL, folder / f"{sid}.tar.xz", "w:xz", "sub/").name, True)


def valid_tar(folder: Path, sid: str) -> Expect:
    return Expect(_tar_of(NULL, folder / f"{sid}.tar", "w").name, True)


# -- injecting submissions --------------------------------------------------------------------
def _raising(condition: str) -> str:
    return (
        "\n\n_PAYLOAD = " + repr(PAYLOAD) + "\n_REPAIRED = []\n\n"
        "class Injecting(Null):\n"
        "    def detect(self, model, clean):\n"
        f"        if {condition}:\n"
        "            raise RuntimeError(_PAYLOAD)\n"
        "        return super().detect(model, clean)\n\n"
        "    def repair(self, model, clean):\n"
        "        _REPAIRED.append(1)\n"
        "        return super().repair(model, clean)\n"
    )


def _injecting(folder: Path, sid: str, condition: str) -> Path:
    dest = _null_copy(folder / sid, _raising(condition))
    toml = (dest / "submission.toml").read_text().replace("submission:Null", "submission:Injecting")
    (dest / "submission.toml").write_text(toml)
    return dest


def task_error(folder: Path, sid: str) -> Expect:
    """Passes its check, then fails a graded detect task with PAYLOAD: the check calls
    every detect before any repair; a graded job runs a model's detect then its repair in
    one warm worker, so the second model's detect comes after a repair."""
    _injecting(folder, sid, "_REPAIRED")
    return Expect(sid, True)


def check_error(folder: Path, sid: str) -> Expect:
    """Fails its submission check with PAYLOAD in the check's message."""
    _injecting(folder, sid, "True")
    return Expect(sid, False, "submission check failed")


# -- hostile archives -------------------------------------------------------------------------
def _set_zip_flag(data: bytes, flag: int) -> bytes:
    """Every local and central header of a zip with ``flag`` set in its general flags."""
    out = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(sig)
        while at >= 0:
            (flags,) = struct.unpack_from("<H", out, at + offset)
            struct.pack_into("<H", out, at + offset, flags | flag)
            at = out.find(sig, at + 4)
    return bytes(out)


def zip_encrypted(folder: Path, sid: str) -> Expect:
    """A password-protected zip (the encryption flag on every member)."""
    plain = _zip_members(folder / f"{sid}.tmp", _null_members())
    (folder / f"{sid}.zip").write_bytes(_set_zip_flag(plain.read_bytes(), 0x1))
    plain.unlink()
    return Expect(f"{sid}.zip", False, "encrypted")


def _damage(data: bytes, start: int) -> bytes:
    """``data`` with 64 bytes from ``start`` on flipped."""
    bad = bytearray(data)
    for i in range(start, min(start + 64, len(bad))):
        bad[i] ^= 0xA5
    return bytes(bad)


def zip_damaged(folder: Path, sid: str) -> Expect:
    """A zip whose compressed data is damaged part-way (a member's deflate stream)."""
    members = _null_members() | {"data.bin": os.urandom(1000) + bytes(60_000)}
    data = _zip_members(folder / f"{sid}.zip", members).read_bytes()
    at = data.find(b"data.bin") + len("data.bin") + 200
    (folder / f"{sid}.zip").write_bytes(_damage(data, at))
    return Expect(f"{sid}.zip", False, "damaged")


def tgz_damaged(folder: Path, sid: str) -> Expect:
    """A .tar.gz damaged in the middle of its compressed stream."""
    tmp = folder / f"{sid}.work"
    _null_copy(tmp)
    (tmp / "data.bin").write_bytes(os.urandom(40_000))
    data = _tar_of(tmp, folder / f"{sid}.tar.gz", "w:gz").read_bytes()
    shutil.rmtree(tmp)
    (folder / f"{sid}.tar.gz").write_bytes(_damage(data, len(data) // 2))
    return Expect(f"{sid}.tar.gz", False, "damaged")


def tgz_truncated(folder: Path, sid: str) -> Expect:
    """A .tar.gz cut off part-way (an upload that stopped)."""
    tmp = folder / f"{sid}.work"
    _null_copy(tmp)
    (tmp / "data.bin").write_bytes(os.urandom(40_000))
    data = _tar_of(tmp, folder / f"{sid}.tgz", "w:gz").read_bytes()
    shutil.rmtree(tmp)
    (folder / f"{sid}.tgz").write_bytes(data[: len(data) * 2 // 3])
    return Expect(f"{sid}.tgz", False, "truncated")


def zip_empty_name(folder: Path, sid: str) -> Expect:
    """A zip member with an empty name (zipfile's is_dir() fails on it)."""
    dest = _zip_members(folder / f"{sid}.zip", _null_members() | {"PLACEHOLDER": b"x"})
    data = dest.read_bytes()
    # Rename "PLACEHOLDER" to "" in both headers: the name's length to 0, its bytes dropped.
    out = bytearray()
    i = 0
    while i < len(data):
        if data.startswith(b"PK\x03\x04", i) and data[i + 30 : i + 41] == b"PLACEHOLDER":
            out += data[i : i + 26] + b"\x00\x00" + data[i + 28 : i + 30]
            i += 41
        elif data.startswith(b"PK\x01\x02", i) and data[i + 46 : i + 57] == b"PLACEHOLDER":
            out += data[i : i + 28] + b"\x00\x00" + data[i + 30 : i + 46]
            i += 57
        else:
            out.append(data[i])
            i += 1
    _fix_zip_offsets(out)
    dest.write_bytes(bytes(out))
    return Expect(dest.name, False, "empty name")


def _fix_zip_offsets(data: bytearray) -> None:
    """Point the central directory's entries and its end record at the headers' new places."""
    locals_ = []
    at = data.find(b"PK\x03\x04")
    while at >= 0:
        locals_.append(at)
        at = data.find(b"PK\x03\x04", at + 4)
    central = data.find(b"PK\x01\x02")
    at, k = central, 0
    while at >= 0 and k < len(locals_):
        struct.pack_into("<I", data, at + 42, locals_[k])
        k += 1
        at = data.find(b"PK\x01\x02", at + 4)
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 12, end - central)
    struct.pack_into("<I", data, end + 16, central)


def zip_non_utf8_name(folder: Path, sid: str) -> Expect:
    """A member name that is not UTF-8, with zip's UTF-8 flag claiming it is."""
    dest = _zip_members(folder / f"{sid}.zip", _null_members() | {"n\u00e9.py": b"x = 1\n"})
    data = dest.read_bytes().replace("n\u00e9.py".encode(), b"n\xff\xfe.py")
    dest.write_bytes(_set_zip_flag(data, 0x800))
    return Expect(dest.name, False, "not UTF-8")


def tar_non_utf8_name(folder: Path, sid: str) -> Expect:
    """A tar member whose name is Latin-1 bytes, not UTF-8."""
    dest = folder / f"{sid}.tar.gz"
    with tarfile.open(dest, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        for name, data in _null_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("caf\u00e9.py")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"x\n"))
    return Expect(dest.name, False, "not UTF-8")


def handin_name_not_utf8(folder: Path, sid: str) -> Expect:
    """A hand-in whose own file name is not UTF-8."""
    name = os.fsdecode(sid.encode() + b"\xff\xfe.zip")
    _zip_of(NULL, folder / name)
    return Expect(name, False, "not a student id")


def deep_manifest(folder: Path, sid: str) -> Expect:
    """submission.toml with an array nested 5,000 deep (a RecursionError in tomllib)."""
    deep = b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n"
    _zip_members(folder / f"{sid}.zip", _null_members(deep + _manifest()))
    return Expect(f"{sid}.zip", False, "nest more than")


def deep_params(folder: Path, sid: str) -> Expect:
    """[params] nested 3,000 deep with dotted keys (no brackets to count)."""
    text = (NULL / "submission.toml").read_text()
    head, _, rest = text.partition("[resources]")
    deep = "[params]\n" + ".".join(["a"] * 3000) + " = 1\n\n"
    _zip_members(
        folder / f"{sid}.zip", _null_members((head + deep + "[resources]" + rest).encode())
    )
    return Expect(f"{sid}.zip", False, "nest more than")


def huge_params(folder: Path, sid: str) -> Expect:
    """10 MiB of [params] (more than the worker protocol's 8 MiB message)."""
    text = (NULL / "submission.toml").read_text()
    head, _, rest = text.partition("[resources]")
    big = '[params]\nblob = "' + "A" * (10 << 20) + '"\n\n'
    manifest = (head + big + "[resources]" + rest).encode()
    _zip_members(folder / f"{sid}.zip", _null_members(manifest), zipfile.ZIP_STORED)
    return Expect(f"{sid}.zip", False, "larger than")


def dangling_link(folder: Path, sid: str) -> Expect:
    """A hand-in that is a symbolic link to nothing."""
    (folder / f"{sid}.zip").symlink_to(folder / "no-such-file.zip")
    return Expect(f"{sid}.zip", False, "symbolic link")


def fifo(folder: Path, sid: str) -> Expect:
    """A FIFO named like an archive: an open() of it waits for a writer forever."""
    os.mkfifo(folder / f"{sid}.tar.gz")
    return Expect(f"{sid}.tar.gz", False, "FIFO")


def folder_with_fifo(folder: Path, sid: str) -> Expect:
    dest = _null_copy(folder / sid)
    os.mkfifo(dest / "data.bin")
    return Expect(sid, False, "FIFO")


def rar(folder: Path, sid: str) -> Expect:
    (folder / f"{sid}.rar").write_bytes(b"Rar!\x1a\x07\x00" + bytes(64))
    return Expect(f"{sid}.rar", False, "RAR archive")


def zip_slip_html(folder: Path, sid: str) -> Expect:
    """A member that climbs out, its name raw HTML."""
    _zip_members(folder / f"{sid}.zip", _null_members() | {"../<script>alert(1)</script>": b"x"})
    return Expect(f"{sid}.zip", False, "climbs out")


def zip_bomb(folder: Path, sid: str) -> Expect:
    _zip_members(folder / f"{sid}.zip", _null_members() | {"zeros": bytes(8 << 20)})
    return Expect(f"{sid}.zip", False, "expands more than")


def bad_toml(folder: Path, sid: str) -> Expect:
    _zip_members(folder / f"{sid}.zip", _null_members(b'name = "x\n<b>unterminated\n'))
    return Expect(f"{sid}.zip", False, "invalid TOML")


def id_trailing_newline(folder: Path, sid: str) -> Expect:
    """A folder named like an id with a newline at its end (`$` matched before it)."""
    _null_copy(folder / f"{sid}\n")
    return Expect(f"{sid}\n", False, "not a student id")


def id_formula(folder: Path, sid: str) -> Expect:
    """A hand-in named like a spreadsheet formula."""
    name = f'=HYPERLINK("evil-{sid}")'
    _null_copy(folder / name)
    return Expect(name, False, "not a student id")


def id_escape(folder: Path, sid: str) -> Expect:
    """A hand-in whose name holds terminal escapes and a tab."""
    name = f"\x1b[31m{sid}\x1b[0m\t@x.zip"
    _zip_of(NULL, folder / name)
    return Expect(name, False, "not a student id")


def two_handins(folder: Path, sid: str) -> Expect:
    _zip_of(NULL, folder / f"{sid}.zip")
    _tar_of(NULL, folder / f"{sid}.tar.gz", "w:gz")
    return Expect(f"{sid}.zip", False, "2 hand-ins for one student")


def oracle(folder: Path, sid: str) -> Expect:
    _zip_members(folder / f"{sid}.zip", _null_members(b"oracle = true\n" + _manifest()))
    return Expect(f"{sid}.zip", False, "oracle")


Maker = Callable[[Path, str], Expect]
#: Every class, valid ones first (a mix takes them in this order, cycling the valid ones).
VALID: dict[str, Maker] = {
    "valid_folder": valid_folder,
    "valid_zip": valid_zip,
    "valid_tgz": valid_tgz,
    "valid_tar_bz2": valid_tar_bz2,
    "valid_tar_xz": valid_tar_xz,
    "valid_tar": valid_tar,
}
HOSTILE: dict[str, Maker] = {
    "zip_encrypted": zip_encrypted,
    "zip_damaged": zip_damaged,
    "tgz_damaged": tgz_damaged,
    "tgz_truncated": tgz_truncated,
    "zip_empty_name": zip_empty_name,
    "zip_non_utf8_name": zip_non_utf8_name,
    "tar_non_utf8_name": tar_non_utf8_name,
    "handin_name_not_utf8": handin_name_not_utf8,
    "deep_manifest": deep_manifest,
    "deep_params": deep_params,
    "huge_params": huge_params,
    "dangling_link": dangling_link,
    "fifo": fifo,
    "folder_with_fifo": folder_with_fifo,
    "rar": rar,
    "zip_slip_html": zip_slip_html,
    "zip_bomb": zip_bomb,
    "bad_toml": bad_toml,
    "id_trailing_newline": id_trailing_newline,
    "id_formula": id_formula,
    "id_escape": id_escape,
    "two_handins": two_handins,
    "oracle": oracle,
    "check_error": check_error,
}
INJECTING: dict[str, Maker] = {"task_error": task_error}
#: The roster's student with an absurd extension (a valid hand-in, graded once fixed).
ABSURD = "s-absurd"


def mix(count: int, hostile: list[str] | None = None) -> list[str]:
    """``count`` class names: every hostile class (or those named), the injecting one,
    and valid ones for the rest."""
    chosen = list(HOSTILE) if hostile is None else hostile
    names = [*chosen, *INJECTING][:count]
    valid = list(VALID)
    names += [valid[i % len(valid)] for i in range(count - len(names))]
    return names


def build(folder: Path, classes: list[str]) -> dict[str, Expect]:
    """One hand-in per class name into ``folder`` (student ids s01, s02, ...); what grading
    must make of each, by student id (as the folder names it)."""
    folder.mkdir(parents=True, exist_ok=True)
    makers = VALID | HOSTILE | INJECTING
    out: dict[str, Expect] = {}
    for i, name in enumerate(classes):
        sid = f"s{i + 1:02d}-{name.replace('_', '-')}"
        out[sid] = makers[name](folder, sid)
    (folder / ABSURD).mkdir()
    shutil.copytree(NULL, folder / ABSURD, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    out[ABSURD] = Expect(ABSURD, False, "extension_days")
    return out


def write_roster(path: Path, expected: dict[str, Expect]) -> None:
    """A roster of the valid ids, with names that inject, and ABSURD's absurd extension."""
    names = ["=HYPERLINK(\"http://evil\",\"x\")", "@SUM(1+1)", "-2+3", "+1", "\tTab",
             "\x1b[31mRed\x1b[0m", "<b>bold</b>\n## forged", "Ada|Lovelace"]  # fmt: skip
    lines = ["id,name,extension_days"]
    valid = [sid for sid, e in expected.items() if e.graded]
    for i, sid in enumerate(valid):
        name = names[i % len(names)].replace('"', '""')
        lines.append(f'{sid},"{name}",0')
    lines.append(f"{ABSURD},Absurd,1e300")
    path.write_text("\n".join(lines) + "\n")


RUBRIC = """
[[line]]
name = "detection <b>auc</b>"
track = "detect"
metric = "auc"
points = 5
scale = { linear = [0.4, 1.0] }

[[line]]
name = "repaired net: clean accuracy"
track = "repair"
metric = "ca"
per_model = true
models = "all"
points = 10
scale = { linear = [0.8, 0.95] }

[failures]
points = 1
max = 5

[late]
due = 2099-12-01T00:00:00+05:00
penalty = 0.25
max_days = 3
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="folder to write handins/, roster.csv, rubric.toml")
    parser.add_argument("--count", type=int, default=40, help="hand-ins (besides the roster's)")
    args = parser.parse_args()
    expected = build(args.dest / "handins", mix(args.count))
    write_roster(args.dest / "roster.csv", expected)
    (args.dest / "rubric.toml").write_text(RUBRIC)
    for sid, e in expected.items():
        print(f"{sid}: {'graded' if e.graded else 'refused: ' + e.says}")


if __name__ == "__main__":
    main()
