"""Grading without running anything: hostile archives, rubric and roster errors, points,
ranks, lateness, the duplicate and identical-output flags, and Gradescope's format. The
batch end to end through bwrap: test_grade_batch.py."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import jsonschema
import pytest

from harness.api import Track
from harness.grading.batch import Batch, HandIn
from harness.grading.handins import student_id
from harness.grading.outputs import duplicates, gradescope, same_outputs
from harness.grading.points import Grade, LinePoints, add_ranks, grade_records
from harness.grading.roster import RosterError, load_roster
from harness.grading.rubric import LatePolicy, RubricError, load_rubric
from harness.grading.unpack import Caps, UnpackError, unpack
from harness.results import ModelFacts, TaskRecord
from harness.submission.manifest import SubmissionSpec

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "gradescope_results.schema.json").read_text()
)
TOML = b'name = "x"\nentry = "submission:X"\ntracks = ["detect"]\n'


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
                tf.addfile(info, io.BytesIO(body))
            else:
                tf.addfile(info)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


# -- unpacking ------------------------------------------------------------------------------
def test_a_plain_archive_unpacks_into_its_folder(tmp_path):
    src = _zip(
        tmp_path / "alice.zip", {"sub/submission.toml": TOML, "sub/submission.py": b"x = 1\n"}
    )
    root = unpack(src, tmp_path / "out" / "alice")
    assert root == tmp_path / "out" / "alice" / "sub"
    assert (root / "submission.py").read_text() == "x = 1\n"
    assert student_id(src) == "alice" and student_id(tmp_path / "bob.tar.gz") == "bob"


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ({"../../evil.py": b"x", "submission.toml": TOML}, "climbs out"),
        ({"/etc/evil.py": b"x", "submission.toml": TOML}, "absolute path"),
        ({"C:\\evil.py": b"x", "submission.toml": TOML}, "absolute path"),
        ({"a/submission.toml": TOML, "b/submission.toml": TOML}, "2 submission.toml"),
        ({"submission.py": b"x"}, "no submission.toml"),
        ({"a/b/c/submission.toml": TOML}, "nested too deep"),
    ],
)
def test_hostile_or_wrong_zips_are_refused_and_nothing_is_left(tmp_path, members, says):
    src = _zip(tmp_path / "mallory.zip", members)
    dest = tmp_path / "out" / "mallory"
    with pytest.raises(UnpackError, match=says):
        unpack(src, dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mallory.zip", "out"]


def test_links_devices_and_bombs_are_refused(tmp_path):
    cases = {
        "zip-link": _zip(tmp_path / "a.zip", {"submission.toml": TOML}, links=("evil",)),
        "tar-symlink": _tar(
            tmp_path / "b.tar.gz", [_member("evil", tarfile.SYMTYPE, "/etc/passwd")]
        ),
        "tar-hardlink": _tar(
            tmp_path / "c.tar.gz", [_member("evil", tarfile.LNKTYPE, "/etc/passwd")]
        ),
        "tar-device": _tar(tmp_path / "d.tar.gz", [_member("evil", tarfile.CHRTYPE)]),
        "tar-fifo": _tar(tmp_path / "e.tar.gz", [_member("evil", tarfile.FIFOTYPE)]),
        "zip-bomb": _zip(tmp_path / "f.zip", {"submission.toml": TOML, "zeros": bytes(8 << 20)}),
        "not-an-archive": tmp_path / "g.zip",
    }
    (tmp_path / "g.zip").write_bytes(b"this is not a zip file")
    says = {
        "zip-link": "is a link",
        "tar-symlink": "is a link",
        "tar-hardlink": "is a link",
        "tar-device": "special file",
        "tar-fifo": "special file",
        "zip-bomb": "expands more than",
        "not-an-archive": "not a readable zip",
    }
    for name, src in cases.items():
        with pytest.raises(UnpackError, match=says[name]):
            unpack(src, tmp_path / "out" / name)
        assert not (tmp_path / "out" / name).exists(), name


def test_caps_on_files_and_size_hold_for_archives_and_folders(tmp_path):
    many = _zip(
        tmp_path / "many.zip", {f"f{i}.py": b"x" for i in range(20)} | {"submission.toml": TOML}
    )
    with pytest.raises(UnpackError, match="more than 10 files"):
        unpack(many, tmp_path / "o1", Caps(files=10))
    big = _tar(tmp_path / "big.tar.gz", [_member("submission.toml"), _member("data.bin")],
               {"submission.toml": TOML, "data.bin": os.urandom(300_000)})  # fmt: skip
    with pytest.raises(UnpackError, match="more than 0 MiB"):
        unpack(big, tmp_path / "o2", Caps(total_bytes=200_000))
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "submission.toml").write_bytes(TOML)
    (folder / "secret").symlink_to("/etc/passwd")
    with pytest.raises(UnpackError, match="is a link"):
        unpack(folder, tmp_path / "o3")


def test_a_nested_archive_is_not_opened(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("submission.toml", TOML)
    src = _zip(tmp_path / "n.zip", {"inner.zip": inner.getvalue()})
    with pytest.raises(UnpackError, match="archives inside are not opened: inner.zip"):
        unpack(src, tmp_path / "out")


# -- rubric and roster --------------------------------------------------------------------------
RUBRIC = """
[[line]]
name = "clean accuracy"
track = "repair"
metric = "ca"
per_model = true
points = 10
scale = { linear = [0.8, 0.95] }

[[line]]
name = "attack success"
track = "repair"
metric = "asr"
per_model = true
points = 10
scale = { linear = [0.5, 0.05] }

[[line]]
name = "detection"
track = "detect"
metric = "auc"
points = 5
scale = { thresholds = [[0.6, 0.5], [0.9, 1.0]] }

[failures]
points = 1
max = 3

[rank]
track = "repair"
metric = "der"
points = [3, 1]

[late]
due = 2026-12-01T23:59:00Z
penalty = 0.25
max_days = 2
"""


def _rubric(tmp_path: Path, text: str = RUBRIC):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    return load_rubric(path)


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (('track = "detect"', 'track = "detekt"'), "did you mean 'detect'"),
        (('metric = "auc"', 'metric = "acu"'), "not a zoo-level metric of track detect"),
        (('metric = "ca"', 'metric = "ca_clean_models"'), "not a per-model score of track repair"),
        (("linear = [0.8, 0.95]", "linear = [0.8, 0.8]"), "bounds are equal"),
        (("[[0.6, 0.5], [0.9, 1.0]]", "[[0.6, 1.5]]"), "share 1.5 is outside"),
        (("points = 5", "points = -5"), "must be above 0"),
        (('name = "detection"', 'name = "clean accuracy"'), "two lines are named"),
        (("due = 2026-12-01T23:59:00Z", 'due = "soon"'), "TOML date-time"),
        (("[failures]", "[failure]"), "unknown key 'failure'"),
        (
            (
                "per_model = true\npoints = 10\nscale = { linear = [0.5",
                "per_model = 1\npoints = 10\nscale = { linear = [0.5",
            ),
            "per_model must be",
        ),
    ],
)
def test_every_rubric_mistake_is_one_line(tmp_path, edit, says):
    with pytest.raises(RubricError, match=says) as err:
        _rubric(tmp_path, RUBRIC.replace(*edit, 1))
    assert "\n" not in str(err.value) and "rubric.toml" in str(err.value)


def test_rubric_reads_lines_scales_and_policies(tmp_path):
    r = _rubric(tmp_path)
    assert [line.name for line in r.lines] == ["clean accuracy", "attack success", "detection"]
    ca, asr, auc = (line.scale for line in r.lines)
    assert ca.share(0.875) == pytest.approx(0.5) and ca.share(0.99) == 1.0 and ca.share(0.5) == 0.0
    assert (
        asr.share(0.05) == 1.0 and asr.share(0.275) == pytest.approx(0.5) and asr.share(0.9) == 0.0
    )
    assert auc.share(0.7) == 0.5 and auc.share(0.95) == 1.0 and auc.share(0.55) == 0.0
    assert ca.share(None) == 0.0
    assert r.max_points == 28 and r.failure_max == 3 and r.rank and r.rank.points == (3, 1)
    late = r.late
    assert isinstance(late, LatePolicy)
    due = late.due
    assert late.days_late(due) == 0 and late.days_late(due + dt.timedelta(hours=1)) == 1
    assert late.days_late(due + dt.timedelta(days=2, hours=1), extension_days=1) == 2
    assert late.factor(1) == 0.75 and late.factor(3) == 0.0


def test_roster_errors_are_one_line(tmp_path):
    path = tmp_path / "roster.csv"
    for text, says in [
        ("name\nA\n", "no id column"),
        ("id,name\na,A\na,B\n", "appears twice"),
        ("id,email\na,x\n", "unknown column"),
        ("id\n../evil\n", "characters a folder name cannot"),
    ]:
        path.write_text(text)
        with pytest.raises(RosterError, match=says):
            load_roster(path)


def test_an_id_matches_whole():
    """`$` matches before a final newline: an id is matched with fullmatch."""
    from harness.grading.roster import is_student_id

    assert is_student_id("alice") and is_student_id("a.b-c_d@e+f")
    assert not any(map(is_student_id, ["alice\n", "alice\r", "-alice", "", "a/b", "a" * 101]))


def test_a_roster_rows_bad_values_cost_that_student_alone(tmp_path):
    """An extension or a time that is no number of days or date within bounds (1e300
    days overflowed the late-days sum) is that row's error; the other rows are read."""
    path = tmp_path / "roster.csv"
    path.write_text(
        "id,extension_days,submitted\na,soon,\nb,1e300,\nc,,yesterday\nd,,9999-12-31T23:59\n"
        "e,2,2026-12-02T10:00:00+05:00\n"
    )
    got = load_roster(path)
    assert "not a number of days" in str(got["a"].error) and "from 0 to 365" in str(got["b"].error)
    assert "not an ISO date-time" in str(got["c"].error) and got["d"].error
    assert got["e"].error is None and got["e"].extension_days == 2
    assert all("\n" not in str(s.error) for s in got.values())
    path.write_text("id,name,extension_days,submitted\nalice,Alice A,1.5,2026-12-02T10:00:00\n")
    alice = load_roster(path)["alice"]
    assert alice.extension_days == 1.5 and alice.submitted and alice.submitted.tzinfo


# -- points -----------------------------------------------------------------------------------
def _rec(
    sub: str, model: str, poisoned: bool, track: str, scores: dict, status: str = "ok", outputs=None
):
    facts = ModelFacts(
        poisoned,
        "backdoored" if poisoned else "clean",
        "mnist",
        "badnets_patch" if poisoned else "none",
        (0,) if poisoned else (),
    )
    return TaskRecord("grade", sub, sub, False, model, "mh", track, status, outputs or {}, scores,
                      None if status == "ok" else "wall-clock limit of 60 s exceeded", None, 1.0, "bwrap", facts)  # fmt: skip


def test_points_per_model_failures_and_ranks(tmp_path):
    rubric = _rubric(tmp_path)
    recs = [
        _rec("h-a", "b1", True, "repair", {"ca": 0.95, "asr": 0.05, "der": 0.97}),
        _rec("h-a", "b2", True, "repair", {}, status="failed"),
        _rec("h-a", "c1", False, "repair", {"ca": 0.9}),
        _rec("h-a", "b1", True, "detect", {"score": 0.9}),
        _rec("h-a", "b2", True, "detect", {"score": 0.8}),
        _rec("h-a", "c1", False, "detect", {"score": 0.1}),
    ]
    g = grade_records("alice", rubric, recs)
    ca, asr, auc = g.lines
    assert ca.points == pytest.approx(5.0)  # full on b1, nothing on the failed b2
    assert asr.points == pytest.approx(5.0) and "b2 - (failed)" in asr.detail
    assert auc.value == 1.0 and auc.points == 5.0
    assert len(g.failures) == 1 and g.failure_penalty == 1.0
    others = [Grade("bob"), Grade("carol"), Grade("dave")]
    add_ranks([g, *others], {"alice": 0.8, "bob": 0.9, "carol": 0.8, "dave": None}, rubric)
    assert (others[0].rank, g.rank, others[1].rank, others[2].rank) == (1, 2, 2, None)
    assert (others[0].rank_points, g.rank_points, others[2].rank_points) == (3, 1, 0)
    assert g.total == pytest.approx(5 + 5 + 5 - 1 + 1)


def _batch(contents: dict[str, str], outputs: dict[str, float]) -> Batch:
    handins, records = [], {}
    for student, content in contents.items():
        spec = SubmissionSpec("x", "m:X", (Track.DETECT,), Path("."), content_hash=content)
        handins.append(HandIn(student, Path(student), dt.datetime.now(dt.timezone.utc), spec))
        records[f"h-{content}"] = [
            _rec(f"h-{content}", "b1", True, "detect", {}, outputs={"score": outputs[content]})
        ]
    return Batch(handins, {}, {}, records)


def test_identical_content_and_identical_outputs_are_flagged_apart():
    b = _batch(
        {"alice": "c1", "bob": "c1", "carol": "c2", "dave": "c3"}, {"c1": 0.5, "c2": 0.5, "c3": 0.9}
    )
    assert duplicates(b) == [["alice", "bob"]]
    assert same_outputs(b) == [["alice", "bob", "carol"]]


def test_results_json_follows_gradescopes_format(tmp_path):
    rubric = _rubric(tmp_path)
    g = Grade(
        "alice",
        [LinePoints("clean accuracy", 5.0, 10.0, 0.9, "b1 90.0 %")],
        ["repair / b2: timeout"],
        1.0,
    )
    g.late_days, g.late_factor = 1, 0.75
    body = gradescope(rubric, g)
    jsonschema.validate(body, SCHEMA)
    assert body["score"] == pytest.approx(3.0) and "1 late day" in body["output"]
    assert body["tests"][0]["max_score"] == 10.0 and body["tests"][1]["score"] == -1.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "tests": [{"points": 1}]}, SCHEMA)


def test_the_worked_example_in_the_docs_is_a_valid_rubric(tmp_path):
    text = (Path(__file__).resolve().parents[1] / "docs" / "GRADING.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    rubric = _rubric(tmp_path, block)
    assert [line.metric for line in rubric.lines] == ["ca", "asr"]
    assert rubric.max_points == 105 and rubric.late and rubric.late.max_days == 3


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns as it writes the hostile zip
def test_members_that_collide_are_refused(tmp_path):
    twice = _zip(tmp_path / "t.zip", {"submission.toml": TOML, "a": b"1"})
    with zipfile.ZipFile(twice, "a") as zf:
        zf.writestr("a", b"2")  # the same name again
        zf.writestr("a/b", b"3")  # under a file
    with pytest.raises(UnpackError, match="appears twice|cannot unpack"):
        unpack(twice, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_oracle_hand_in_is_refused_and_never_given_poisoned_samples(tmp_path):
    """A student's manifest asking for the oracle's poisoned samples is refused with its
    reason (they are for reference rows only), before any check or task runs."""
    from harness.grading.batch import ORACLE_REFUSED, prepare

    for sid, oracle in (("s1", "true"), ("s2", "false")):
        folder = tmp_path / "in" / sid
        folder.mkdir(parents=True)
        (folder / "submission.toml").write_text(TOML.decode() + f"oracle = {oracle}\n")
        (folder / "submission.py").write_text(
            "class X:\n    def detect(self, model, clean):\n        return 0.5\n"
        )
    handins = prepare(sorted((tmp_path / "in").iterdir()), tmp_path / "out", {})
    by_id = {h.student: h for h in handins}
    assert by_id["s1"].error == ORACLE_REFUSED and "\n" not in ORACLE_REFUSED
    assert by_id["s2"].error is None and by_id["s2"].spec and not by_id["s2"].spec.oracle


def test_feedback_shows_times_in_utc_and_lines_read_well(tmp_path):
    """A roster time given at +05:00 is shown converted to UTC, not relabelled; a per-model
    line over all models with nothing run says "no model", not "no all model"."""
    from harness.grading.outputs import feedback
    from harness.grading.points import line_points
    from harness.grading.rubric import Line, Scale

    rubric = _rubric(tmp_path)
    line = Line("any", Track.REPAIR, "ca", 5.0, Scale(linear=(0.5, 1.0)), True, "all")
    assert line_points(line, [], []).detail == "no model was run on repair"
    when = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    batch = Batch([HandIn("alice", Path("alice"), when)], {}, {}, {})
    text = feedback(batch, rubric, Grade("alice"), tmp_path)
    assert "Handed in 2026-12-02 05:00 UTC; due 2026-12-01 23:59 UTC." in text
