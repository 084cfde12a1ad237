"""Property-based tests (Hypothesis) of everything untrusted the harness reads and writes
(docs/SECURITY.md, "One hand-in never stops the batch" and "Untrusted text in outputs"):

- generated archives (member names, types, sizes, flags, compression; damaged or cut
  bytes) unpack or raise UnpackError with a one-line reason, and write nothing outside the
  student's folder;
- a generated folder of hand-ins (archives, links, FIFOs, odd names) is prepared without
  an exception escaping and without hanging: every hand-in has a manifest or a reason;
- generated manifests, rosters, rubrics and worker replies raise only the harness's own
  error types, each one line;
- the encoders, and every CSV, Markdown and terminal output of a grading or a run's
  report built from generated untrusted text: no cell a spreadsheet reads as a formula, no
  control character, no raw HTML tag, no forged line.

`make test` runs a few dozen examples of each, fixed (the `ci` profile in conftest.py);
`make test-slow` thousands (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import signal
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness.api import Track
from harness.errors import HarnessError
from harness.grading.barrier import grading_log
from harness.grading.batch import ERROR_KINDS, Batch, HandIn, prepare
from harness.grading.outputs import write_outputs
from harness.grading.points import Grade, LinePoints
from harness.grading.roster import RosterError, Student, load_roster
from harness.grading.rubric import RubricError, load_rubric
from harness.grading.unpack import Caps, UnpackError, unpack
from harness.report.encode import FORMULA_START, csv_cell, html_text, md_text, plain, terminal
from harness.sandbox.protocol import ProtocolError, receive
from harness.submission.manifest import MAX_NESTING, MAX_PARAMS_BYTES, load_submission
from harness.submission.validate import OutputError, reply_file, reply_object

pytestmark = pytest.mark.fuzz

#: A control character (C0, DEL, C1) or a bidi override: none may reach an output.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: A raw HTML tag (or comment, or processing instruction) in Markdown.
HTML_TAG = re.compile(r"<[A-Za-z/!?]")
TOML = b'name = "x"\nentry = "submission:X"\ntracks = ["detect"]\n'


# -- strategies ---------------------------------------------------------------------------------
#: Text the way untrusted text comes: any code point (surrogates included: the bytes of a
#: name that is not UTF-8), biased towards what injects.
NASTY = [
    "\x1b[2J", "\x1b]0;t\x07", "\n", "\r\n", "\r", "\t", "\x00", "\x85", "\u2028", "\u202e",
    "<script>", "</td>", "<!--", "&lt;", "|", "`", "*", "_", "[x](y)", "![i](j)", "#", "## ",
    "- ", "1. ", "=", "+", "-", "@", "'", '"', "\\", "$x$", "~~", "\ud800", "\udcff", "=1+1",
]  # fmt: skip
untrusted = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=8).map(
    "".join
)


def _no_control(text: str, keep: str = "") -> bool:
    return not any(CONTROL.match(c) and c not in keep for c in text)


# -- the encoders -------------------------------------------------------------------------------
@given(untrusted)
def test_every_encoder_leaves_nothing_that_injects(text):
    cell, md, term, html = csv_cell(text), md_text(text), terminal(text), html_text(text)
    assert not cell.startswith(FORMULA_START) and _no_control(cell) and not HTML_TAG.search(cell)
    assert _no_control(md) and "\n" not in md and not HTML_TAG.search(md)
    assert not re.search(r"(?<!\\)\|", md.replace("\\\\", ""))  # every pipe escaped
    assert not re.match(r"\s*([-+=>#]|\d+[.)])", md)  # nothing starts a block
    assert _no_control(term) and "\n" not in term
    assert "<" not in html and ">" not in html and _no_control(html, keep="\n\t")
    assert plain(plain(text)) == plain(text)


# -- archives -----------------------------------------------------------------------------------
member_names = st.one_of(
    st.sampled_from(
        [
            b"submission.toml",
            b"sub/submission.toml",
            b"submission.py",
            b"",
            b".",
            b"./",
            b"..",
            b"../x",
            b"/etc/x",
            b"C:\\x",
            b"a/../../x",
            b"a\\..\\..\\x",
            b"dir/",
            b"dir/submission.toml",
            b"\xff\xfe.py",
            b"a\x1b[31m",
            b"a\nb",
            b"x" * 300,
            b"a/" * 80 + b"b",
        ]
    ),  # fmt: skip
    st.binary(max_size=24),
)
member_data = st.one_of(st.binary(max_size=300), st.just(TOML), st.integers(0, 200_000).map(bytes))


@st.composite
def zip_archive(draw) -> bytes:
    """A zip written byte by byte: any name bytes, flags, method, mode, lying sizes."""
    out, central, n = bytearray(), bytearray(), draw(st.integers(0, 6))
    for _ in range(n):
        name, data = draw(member_names), draw(member_data)
        method = draw(st.sampled_from([0, 8, 8, 12, 14, 99]))
        flags = draw(st.sampled_from([0, 0, 0x800, 0x1, 0x8, 0x40, 0x801]))
        mode = draw(st.sampled_from([0, 0o100644, 0o40755, 0o120777, 0o10644, 0o20644]))
        body = data
        if method == 8:
            packer = zlib.compressobj(wbits=-15)
            body = packer.compress(data) + packer.flush()
        crc = zlib.crc32(data) if draw(st.booleans()) else draw(st.integers(0, 2**32 - 1))
        size = len(data) if draw(st.booleans()) else draw(st.integers(0, 2**32 - 1))
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0, crc,
                           len(body), size, len(name), 0) + name + body  # fmt: skip
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x314, 20, flags, method,
                               0, 0, crc, len(body), size, len(name), 0, 0, 0, 0, mode << 16,
                               offset) + name  # fmt: skip
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), 0)
    return bytes(out + central + end)


TAR_TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
             tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.CONTTYPE, b"Z"]  # fmt: skip


@st.composite
def tar_archive(draw) -> tuple[bytes, str]:
    """A tar (plain, gz, bz2 or xz) of members of any type and name bytes."""
    compression = draw(st.sampled_from(["", "gz", "bz2", "xz"]))
    buf = io.BytesIO()
    fmt = draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]))
    try:
        with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w",
                          format=fmt, encoding="utf-8", errors="surrogateescape") as tf:  # fmt: skip
            for _ in range(draw(st.integers(0, 6))):
                info = tarfile.TarInfo(os.fsdecode(draw(member_names)))
                info.type = draw(st.sampled_from(TAR_TYPES))
                info.linkname = draw(
                    st.sampled_from(["", "/etc/passwd", "../x", "submission.toml"])
                )
                data = draw(member_data) if info.type in (tarfile.REGTYPE, b"Z") else b""
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    except (ValueError, UnicodeError):  # a name the chosen format cannot hold
        assume(False)
    ending = {"": ".tar", "gz": ".tar.gz", "bz2": ".tar.bz2", "xz": ".tar.xz"}[compression]
    return buf.getvalue(), ending


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` as it was, with bytes flipped somewhere, or cut off."""
    how = draw(st.sampled_from(["none", "flip", "cut", "junk"]))
    if not data or how == "none":
        return data
    at = draw(st.integers(0, len(data) - 1))
    if how == "cut":
        return data[:at]
    if how == "junk":
        return data + draw(st.binary(min_size=1, max_size=64))
    flip = bytearray(data)
    for i in range(at, min(at + draw(st.integers(1, 16)), len(flip))):
        flip[i] ^= draw(st.integers(1, 255))
    return bytes(flip)


@st.composite
def archive(draw) -> tuple[bytes, str]:
    if draw(st.booleans()):
        data, ending = draw(zip_archive()), ".zip"
    else:
        data, ending = draw(tar_archive())
    return draw(damaged(data)), ending


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail, not hang, when the body takes longer (a FIFO opened, a blocking read)."""

    def fail(*_: object) -> None:
        raise TimeoutError(f"took more than {seconds} s: something blocked")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _everything(root: Path) -> set[Path]:
    return {Path(d, n) for d, dirs, files in os.walk(root) for n in dirs + files}


@given(archive())
def test_any_archive_unpacks_inside_its_folder_or_is_refused_in_one_line(made):
    data, ending = made
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "handins" / f"mallory{ending}"
        source.parent.mkdir()
        source.write_bytes(data)
        dest = root / "out" / "students" / "mallory" / "submission"
        before = _everything(root)
        folders = {dest.parent, dest.parent.parent, root / "out"}  # unpack makes them
        try:
            with deadline(30):
                got = unpack(source, dest, Caps(files=50, total_bytes=2 << 20))
        except UnpackError as exc:
            assert "\n" not in exc.line() and exc.problem, exc.line()
            assert not dest.exists()
            assert _everything(root) - before <= folders
        else:
            assert got == dest or got.parent == dest
            assert (got / "submission.toml").is_file()
            new = _everything(root) - before - folders
            assert all(p == dest or dest in p.parents for p in new)
            assert not any(p.is_symlink() or not (p.is_file() or p.is_dir()) for p in new)


# -- a folder of hand-ins: the barrier ----------------------------------------------------------
entry_names = st.one_of(
    st.sampled_from(
        [
            "alice",
            "bob.zip",
            "carol.tar.gz",
            "dave.rar",
            "eve\n",
            "=1+1.zip",
            "\x1b[31mred.zip",
            "x.tar.xz",
            "y.tgz",
            "z.7z",
            "notes.txt",
            "-a.zip",
        ]
    ),  # fmt: skip
    st.binary(min_size=1, max_size=16).map(os.fsdecode),
)


@st.composite
def handin_folder(draw) -> list[tuple[str, str, bytes]]:
    """(name, kind, bytes) of up to five hand-ins: archives, folders, links, FIFOs."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(entry_names)
        assume("/" not in name and "\x00" not in name and name not in (".", ".."))
        assume(not name.startswith("."))
        kind = draw(st.sampled_from(["archive", "folder", "link", "dangling", "fifo", "file"]))
        data, ending = draw(archive()) if kind == "archive" else (b"", "")
        out.append((name + ending if kind == "archive" else name, kind, data))
    return out


def _make(folder: Path, name: str, kind: str, data: bytes) -> None:
    path = folder / name
    if path.exists() or path.is_symlink():
        return
    if kind in ("archive", "file"):
        path.write_bytes(data)
    elif kind == "folder":
        path.mkdir()
        (path / "submission.toml").write_bytes(TOML)
        (path / "submission.py").write_text("class X:\n    pass\n")
        os.mkfifo(path / "pipe")
    elif kind == "link":
        path.symlink_to("/etc")
    elif kind == "dangling":
        path.symlink_to(folder / "nowhere")
    else:
        os.mkfifo(path)


@given(handin_folder(), st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]),
                                           untrusted), max_size=3))  # fmt: skip
def test_no_hand_in_stops_or_hangs_the_batch(entries, roster_names):
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "handins", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        for name, kind, data in entries:
            _make(folder, name, kind, data)
        roster = {sid: Student(sid, name) for sid, name in roster_names}
        before = _everything(Path(tmp))
        with deadline(60):
            handins = prepare(sorted(folder.iterdir()), out, roster, grading_log(out, folder))
        for h in handins:
            assert (h.spec is None) != (h.error is None) or (h.spec and h.error), h
            if h.error:
                assert "\n" not in h.error and h.error_kind in ERROR_KINDS.values()
                assert str(out.resolve()) not in h.error and str(folder.resolve()) not in h.error
        for p in _everything(Path(tmp)) - before:  # written only into students' folders
            assert (
                p == out / "students" or (out / "students") in p.parents or p == out / "grading.log"
            )


#: What a step may raise that no one foresaw: a library's error, a bug, a resource running out.
SURPRISES = [RuntimeError("x\n## forged"), RecursionError(), MemoryError(), KeyError("k"),
             zlib.error("bad"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
             OSError(5, "I/O error", "/abs/out/students/x"), AssertionError(), ValueError()]  # fmt: skip
STEPS = ["harness.grading.batch.unpack", "harness.grading.batch.load_submission",
         "harness.grading.batch.handed_in"]  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(STEPS), st.sampled_from(SURPRISES)), min_size=1,
                max_size=3), st.integers(1, 4))  # fmt: skip
def test_the_barrier_holds_whatever_a_step_raises(surprises, n):
    """Any exception of any step is its hand-in's failure, one line without the grading
    folder's path, its traceback in the log; the other hand-ins are prepared."""
    from unittest import mock

    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "handins", Path(tmp) / "out"
        for i in range(n):
            (folder / f"s{i}").mkdir(parents=True)
            (folder / f"s{i}" / "submission.toml").write_bytes(TOML)
            (folder / f"s{i}" / "submission.py").write_text("class X: ...\n")
        out.mkdir()
        victim, (step, exc) = "s0", surprises[0]
        real = {s: __import__("harness.grading.batch", fromlist=["x"]).__dict__[s.rsplit(".", 1)[1]]
                for s in STEPS}  # fmt: skip

        def raising(name: str):
            def fn(*args, **kwargs):
                if any(victim in Path(str(a)).parts for a in args):  # not in the tmp name
                    raise exc
                return real[name](*args, **kwargs)

            return fn

        with mock.patch(step, raising(step)), deadline(30):
            handins = prepare(sorted(folder.iterdir()), out, {}, grading_log(out, folder))
        by_id = {h.student: h for h in handins}
        assert by_id[victim].error and "\n" not in by_id[victim].error
        assert str(Path(tmp).resolve()) not in by_id[victim].error
        assert "/abs/out" not in by_id[victim].error or isinstance(exc, OSError)
        assert all(h.spec and not h.error for sid, h in by_id.items() if sid != victim)
        assert (out / "grading.log").read_text().count("Traceback") == 1


# -- manifests, rosters, rubrics -----------------------------------------------------------------
def _toml(value: object) -> str:
    """A value as a TOML inline value (the generated manifests' writer)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if not (isinstance(value, float) and not math.isfinite(value)) else (
            "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))  # fmt: skip
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    untrusted.filter(lambda s: s < "\ud800" or not re.search("[\ud800-\udfff]", s)),  # fmt: skip
    st.datetimes(min_value=dt.datetime(1, 1, 1)),
    st.dates(),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12)  # fmt: skip
KEYS = ["name", "entry", "tracks", "params", "resources", "oracle", "authors", "description",
        "configure", "unknown", "name\n## x"]  # fmt: skip


@st.composite
def manifest_text(draw) -> bytes:
    how = draw(st.sampled_from(["keys", "deep", "dotted", "huge", "bytes"]))
    if how == "bytes":
        return draw(st.binary(max_size=400))
    if how == "deep":
        n = draw(st.integers(10, 3000))
        return TOML + f"[params]\nx = {'[' * n}{']' * n}\n".encode()
    if how == "dotted":
        return (
            TOML + ("[params]\n" + ".".join(["a"] * draw(st.integers(1, 500))) + " = 1\n").encode()
        )
    if how == "huge":
        return TOML + f'[params]\nx = "{"A" * draw(st.integers(60_000, 300_000))}"\n'.encode()
    base = {"name": "x", "entry": "submission:X", "tracks": ["detect"]}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        base[key] = draw(values)
    if draw(st.booleans()):
        keys = st.sampled_from(["wall_seconds_per_model", "memory_gb", "configure_seconds"])
        base["resources"] = draw(st.dictionaries(keys, scalars, max_size=3))
    lines = [f"{json.dumps(k)} = {_toml(v)}" for k, v in base.items()]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@given(manifest_text())
def test_a_manifest_is_read_or_refused_in_one_line(text):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "submission.toml").write_bytes(text)
        (folder / "submission.py").write_text("class X: ...\n")
        try:
            spec = load_submission(folder)
        except HarnessError as exc:
            assert "\n" not in exc.line(), exc.line()
            return
        assert len(json.dumps(spec.params, allow_nan=False)) <= MAX_PARAMS_BYTES
        depth, stack = 0, [(spec.params, 1)]
        while stack:
            item, d = stack.pop()
            depth = max(depth, d)
            if isinstance(item, dict | list):
                stack += [(v, d + 1) for v in (item.values() if isinstance(item, dict) else item)]
        assert depth <= MAX_NESTING + 1


roster_cells = st.one_of(untrusted, st.sampled_from(["1e300", "-1", "nan", "inf", "365", "2",
    "9999-12-31T23:59:59", "0001-01-01", "2026-12-01T10:00:00+14:00", "yesterday", "1e-300"]))  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(["alice", "bob", "c.d", "e@f", "x\ny", "-g", ""]),
                          roster_cells, roster_cells, roster_cells), max_size=5),
       st.booleans())  # fmt: skip
def test_a_roster_is_read_or_refused_in_one_line_and_its_days_add_up(rows, bom):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "name", "extension_days", "submitted"])
    writer.writerows(rows)
    due = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "roster.csv"
        path.write_bytes(
            ("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8", "surrogatepass")
        )
        try:
            roster = load_roster(path)
        except RosterError as exc:
            assert "\n" not in exc.line()
            return
    from harness.grading.rubric import LatePolicy

    late = LatePolicy(due, 0.1, 3)
    for student in roster.values():
        assert student.error is None or "\n" not in student.error
        when = student.submitted or due
        assert late.days_late(when, student.extension_days) >= 0  # no OverflowError


rubric_values = st.one_of(
    st.sampled_from(
        [
            "detect",
            "repair",
            "filter",
            "auc",
            "ca",
            "asr",
            "der",
            "backdoored",
            "all",
            "2026-12-01T00:00:00Z",
        ]
    ),  # fmt: skip
    values,
)


@given(st.lists(st.dictionaries(st.sampled_from(["name", "track", "metric", "per_model",
       "models", "points", "scale"]), rubric_values, max_size=7), max_size=3),
       st.dictionaries(st.sampled_from(["due", "penalty", "max_days"]), rubric_values,
                       max_size=3))  # fmt: skip
def test_a_rubric_is_read_or_refused_in_one_line(lines, late):
    text = "".join("[[line]]\n" + "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in line.items())
                   for line in lines)  # fmt: skip
    if late:
        text += "[late]\n" + "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in late.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rubric.toml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            rubric = load_rubric(path)
        except RubricError as exc:
            assert "\n" not in exc.line()
            return
    if rubric.late:
        for days in (0.0, 365.0):
            rubric.late.factor(rubric.late.days_late(dt.datetime.now(dt.timezone.utc), days))


# -- worker replies -----------------------------------------------------------------------------
@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), untrusted),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(untrusted, inner, max_size=3)),
    max_leaves=10).map(lambda v: json.dumps(v).encode())))  # fmt: skip
def test_a_worker_reply_is_a_message_or_a_protocol_error(body):
    try:
        message = receive(io.BytesIO(struct.pack(">I", len(body)) + body))
    except ProtocolError:
        return
    assert isinstance(message, dict)
    with tempfile.TemporaryDirectory() as tmp:
        for key in list(message)[:3]:
            try:
                reply_object(message.get(key), "result")
                reply_file(message, key, Path(tmp))
            except OutputError as exc:
                assert str(exc)


def test_a_task_error_that_is_no_utf8_is_stored(tmp_path):
    """A reply's JSON may hold "\\ud800": the store cannot keep a lone surrogate, so the
    runner makes it storable (it stopped the run before)."""
    from harness.execution.runner import storable

    assert storable("a\ud800b") == "a?b" and storable(None) is None


# -- outputs of a grading and of a run's report --------------------------------------------------
FEEDBACK_LINES = re.compile(
    r"(# Feedback for |\*\*Total: |Your hand-in was not graded: |\| |\|---|Failed tasks \(|- |"
    r"Ranking by |Handed in |Late days: |No hand-in\.|## Submission check |$)"
)


@st.composite
def graded_batch(draw) -> tuple[Batch, object]:
    from harness.grading.rubric import LatePolicy, Line, Rubric, Scale

    rubric = Rubric(Path("r.toml"), (Line(draw(untrusted) or "l", Track.DETECT, "auc", 5.0,
                                          Scale(linear=(0.5, 1.0))),),
                    1.0, 3.0, None, LatePolicy(dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc), 0.1, 3))  # fmt: skip
    ids = draw(st.lists(st.one_of(st.sampled_from(["alice", "bob", "c.d"]), untrusted),
                        min_size=1, max_size=4, unique=True))  # fmt: skip
    grades, handins, roster = {}, [], {}
    offset = dt.timezone(dt.timedelta(hours=draw(st.integers(-12, 14))))
    for sid in ids:
        g = Grade(sid, [LinePoints(rubric.lines[0].name, 1.0, 5.0, 0.6, draw(untrusted))])
        if draw(st.booleans()):
            g.error, g.error_kind = (
                draw(untrusted),
                draw(st.sampled_from(list(ERROR_KINDS.values()))),
            )
        g.failures = draw(st.lists(untrusted, max_size=2))
        grades[sid] = g
        h = HandIn(sid, Path(sid.replace("/", "_") or "x"), dt.datetime(2026, 12, 2, tzinfo=offset))
        h.checks = [{"name": draw(untrusted), "passed": draw(st.booleans()),
                     "message": draw(untrusted), "fix": draw(untrusted)}]  # fmt: skip
        handins.append(h)
        roster[sid] = Student(sid, draw(untrusted))
    return Batch(handins, grades, roster, {}), rubric


def _csv_cells_safe(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _no_control(text, keep="\n"), path
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(FORMULA_START), (path, cell)
            assert not HTML_TAG.search(cell), (path, cell)


def _md_safe(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _no_control(text, keep="\n") and not HTML_TAG.search(text), path


@given(graded_batch())
def test_every_grading_output_is_safe_and_holds_no_forged_line(made):
    batch, rubric = made
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        written = write_outputs(batch, rubric, out)  # type: ignore[arg-type]
        for path in written:
            assert out in path.parents
            if path.suffix == ".csv":
                _csv_cells_safe(path)
            elif path.suffix == ".md":
                _md_safe(path)
            if path.name == "feedback.md":
                lines = path.read_text().splitlines()
                assert all(FEEDBACK_LINES.match(line) for line in lines), lines
                assert sum(line.startswith("# ") for line in lines) == 1
                assert sum(line.startswith("Handed in") for line in lines) == 1
                assert "UTC" in next(x for x in lines if x.startswith("Handed in"))
        grades = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
        assert len(grades) == 1 + len(batch.grades)  # one row per student: none forged
        summary = (out / "summary.md").read_text().splitlines()
        assert [x for x in summary if x.startswith("#")] == [
            "# Grading summary (for the instructor)", "## Distribution of totals",
            "## Failures by kind", "## Identical hand-ins (same content)",
            "## Different hand-ins with identical outputs on every task"]  # fmt: skip


@given(untrusted, untrusted)
def test_a_runs_leaderboard_holds_task_errors_as_text(error, model):
    from harness.report.markdown import render_markdown
    from harness.report.view import load_run
    from harness.results import ModelFacts, ResultsStore, TaskRecord

    facts = ModelFacts(True, "backdoored", "mnist", "badnets_patch", (0,))
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore(Path(tmp) / "r.sqlite")
        store.ensure_run("r1", "fabricated", "zoohash", "harness run")
        for i, status in enumerate(["ok", "failed"]):
            store.write_task(TaskRecord(
                "r1", "alpha", "h", False, f"m{i}", "mh", "detect", status, {"score": 0.5},
                {"score": 0.5}, None if status == "ok" else error.encode("utf-8", "replace").decode() or "x",
                None, 1.0, "bwrap", facts, budget=60.0))  # fmt: skip
        written = render_markdown(load_run(store, "r1"), Path(tmp) / "out")
        store.close()
        md = written[0].read_text()
        _md_safe(written[0])
        _csv_cells_safe(written[1])
        failed = md.split("## Failed tasks\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert len(failed) == 1 and failed[0].startswith("- `alpha`")
        assert [x for x in md.splitlines() if x.startswith("## ")].count("## Failed tasks") == 1
    del model


@given(untrusted, untrusted)
def test_the_terminal_gets_no_control_character_and_no_forged_line(text, error):
    from rich.console import Console

    from harness.cli import common

    buf = io.StringIO()
    old = common.err
    common.err = Console(file=buf, force_terminal=False, width=30)  # narrow: no wrapping
    try:
        with common.Reporter("tasks", total=1) as reporter:
            reporter.item(f"h-1 detect {text}", 1.0, error)
        common.go_on_without([HarnessError(error, path=text, fix=text)], 1)
    finally:
        common.err = old
    shown = buf.getvalue()
    assert _no_control(shown, keep="\n") and "\x1b" not in shown
    # the failure (when there is an error), the item, the refusal: no line more
    assert len(shown.splitlines()) == 2 + bool(error), shown
