"""submission.toml parsing and the resource caps it leads to, on fabricated folders (no
submission code is imported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import Track
from harness.errors import HarnessError, SpecError
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import ResourceRequest, content_hash, load_submission
from harness.tracks import required_methods

GOOD = """
name = "my-defense"
authors = ["Ada", "Grace"]
description = "fabricated"
entry = "submission:MyDefense"
tracks = ["detect", " Repair ", "detect"]
oracle = true
[params]
steps = 3
[resources]
wall_seconds_per_model = 30
memory_gb = 2.5
"""


def folder(tmp_path: Path, toml: str | None = GOOD, code: str = "submission.py") -> Path:
    sub = tmp_path / "sub"
    (sub / Path(code).parent).mkdir(parents=True, exist_ok=True)
    (sub / code).write_text("class MyDefense: ...\n")
    if toml is not None:
        (sub / "submission.toml").write_text(toml)
    return sub


def test_a_full_manifest_is_read_without_importing_the_code(tmp_path):
    sub = folder(tmp_path)
    (sub / "submission.py").write_text("raise SystemExit('imported!')\n")
    spec = load_submission(sub)
    assert spec.name == "my-defense" and spec.entry == "submission:MyDefense"
    assert spec.module_name == "submission"
    assert spec.tracks == (Track.DETECT, Track.REPAIR)  # parsed, trimmed, de-duplicated
    assert spec.authors == ("Ada", "Grace") and spec.params == {"steps": 3}
    assert spec.resources == ResourceRequest(wall_seconds_per_model=30.0, memory_gb=2.5)
    assert spec.oracle is True and spec.path == sub.resolve()
    assert spec.content_hash == content_hash(sub.resolve())
    assert required_methods(spec.tracks) == {"detect", "repair", "predict"}


def test_defaults_and_a_package_entry(tmp_path):
    minimal = 'name = "p"\nentry = "pkg.mod:Cls"\ntracks = ["fuzz"]\n'
    spec = load_submission(folder(tmp_path, minimal, code="pkg/mod/__init__.py"))
    assert spec.resources == ResourceRequest() and spec.params == {} and spec.authors == ()
    assert spec.oracle is False and spec.module_name == "pkg.mod"


def test_the_content_hash_follows_every_file_but_not_bytecode(tmp_path):
    sub = folder(tmp_path)
    first = content_hash(sub)
    (sub / "__pycache__").mkdir()
    (sub / "__pycache__" / "submission.cpython-311.pyc").write_bytes(b"\0")
    (sub / "stale.pyc").write_bytes(b"\0")
    assert content_hash(sub) == first
    (sub / "weights.npy").write_bytes(b"data")  # data files count, not only code
    second = content_hash(sub)
    assert second != first
    (sub / "weights.npy").rename(sub / "renamed.npy")  # names count, not only bytes
    assert content_hash(sub) != second


@pytest.mark.parametrize(
    "change, problem, fix",
    [
        (('name = "my-defense"', 'name = "My Defense"'), "name 'My Defense'", "lower-case"),
        (('name = "my-defense"', ""), "name None is missing", "lower-case"),
        (('entry = "submission:MyDefense"', 'entry = "submission"'), "not module:Class", "entry ="),
        (('entry = "submission:MyDefense"', 'entry = "other:X"'), "'other' not found", "add other.py"),
        (('tracks = ["detect", " Repair ", "detect"]', "tracks = []"), "non-empty list", "tracks ="),
        (('tracks = ["detect", " Repair ", "detect"]', 'tracks = ["detekt"]'), "unknown track 'detekt'", "fix the tracks"),
        (("oracle = true", 'oracle = "yes"'), "oracle must be true or false", "oracle = false"),
        (('authors = ["Ada", "Grace"]', "authors = [1]"), "authors must be a list of strings", "authors ="),
        (("[params]\nsteps = 3", "params = 3"), "[params] must be a table", "[params]"),
        (("memory_gb = 2.5", "gpus = 1"), "unknown resource 'gpus'", "wall_seconds_per_model"),
        (("memory_gb = 2.5", "memory_gb = 0"), "resources.memory_gb must be a positive", "memory_gb ="),
        (("memory_gb = 2.5", "memory_gb = true"), "resources.memory_gb must be a positive", "memory_gb ="),
        (("memory_gb = 2.5", "memory_gb = nan"), "resources.memory_gb must be a positive", "memory_gb ="),
        (("memory_gb = 2.5", 'memory_gb = "2"'), "resources.memory_gb must be a positive", "memory_gb ="),
        (('description = "fabricated"', 'descripton = "typo"'), "unknown key(s) descripton", "allowed keys"),
        (("[resources]", "[resources\n"), "invalid TOML", "correct the syntax"),
    ],
)  # fmt: skip
def test_every_manifest_problem_names_the_file_and_the_fix(tmp_path, change, problem, fix):
    old, new = change
    assert old in GOOD
    sub = folder(tmp_path, GOOD.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_submission(sub)
    err = info.value
    assert err.path == str(sub.resolve() / "submission.toml")
    assert problem in err.problem and fix in err.fix
    assert "\n" not in err.line() and err.line().startswith(f"{err.path}: ")


def test_a_missing_folder_or_manifest_says_what_to_do(tmp_path):
    with pytest.raises(SpecError, match="no such submission folder.*pass a folder"):
        load_submission(tmp_path / "nowhere")
    with pytest.raises(SpecError, match="missing submission.toml.*submissions/template"):
        load_submission(folder(tmp_path, toml=None))


def test_harness_errors_render_as_one_line():
    assert HarnessError("bad", fix="do x", path="f.toml").line() == "f.toml: bad (fix: do x)"
    assert str(HarnessError("bad")) == "bad"


def test_resource_requests_are_capped_by_the_harness():
    caps = SandboxLimits(wall_seconds=600.0, memory_gb=6.0)
    assert caps.capped(30.0, 2.5) == SandboxLimits(wall_seconds=30.0, memory_gb=2.5)
    higher = caps.capped(10_000.0, 64.0)  # asking for more than the caps gets the caps
    assert (higher.wall_seconds, higher.memory_gb) == (600.0, 6.0)
    assert caps.capped(None, None) == caps
    assert caps.capped(30.0, None).cpu_seconds == caps.cpu_seconds  # the rest is untouched
