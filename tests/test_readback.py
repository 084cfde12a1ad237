"""What the harness reads back from a sandbox, and what it takes on a submission's word.

Unit tests (fabricated folders and replies) for ``harness.sandbox.readback``, the bounded
reply reader, the store's refusal of what JSON cannot write, the fuzz track's distance
from the seed, the trigger's mask budget and a job's task order; then the hostile hand-ins
of tests/hostile/ (listed in test_hostile.ELSEWHERE) through the real bwrap sandbox on the tiny zoo, each contained
to its own task (or configure step, or attack instance), every other result stored.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli
from hostile_cases import materialize

from harness.api import Track
from harness.results import ResultsStore, TaskRecord, UnstorableTask
from harness.sandbox.readback import Inside, ReadbackError, copy_folder, open_file
from harness.submission.validate import (
    MAX_REPLY_DEPTH,
    MAX_REPLY_VALUES,
    OutputError,
    load_array,
    reply_file,
    reply_object,
)

CASES = REPO / "tests" / "hostile"
A = "mnist-clean-a-s1-v1"
PATCH = "mnist-badnets-patch3-t0-v1"
LINKS_REFUSED = "is a symbolic link: links are refused"


def nested(depth: int) -> list:
    deep: list = []
    for _ in range(depth - 1):
        deep = [deep]
    return deep


# -- harness.sandbox.readback ----------------------------------------------------------------
@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A sandbox's scratch folder with an output folder and a host folder beside it."""
    (tmp_path / "scratch" / "out").mkdir(parents=True)
    (tmp_path / "host").mkdir()
    np.save(tmp_path / "host" / "scores.npy", np.ones(3))
    np.save(tmp_path / "scratch" / "out" / "scores.npy", np.zeros(3))
    return tmp_path / "scratch"


def test_a_file_in_the_output_folder_is_read(scratch):
    got = load_array(reply_file({"s": "scores.npy"}, "s", Inside(scratch, ("out",))), "scores")
    assert got.tolist() == [0.0, 0.0, 0.0]


def test_an_output_folder_that_is_a_link_to_a_host_folder_is_refused(scratch):
    (scratch / "out" / "scores.npy").unlink()
    (scratch / "out").rmdir()
    (scratch / "out").symlink_to(scratch.parent / "host")
    where = reply_file({"s": "scores.npy"}, "s", Inside(scratch, ("out",)))
    with pytest.raises(OutputError, match=f"flag\\(\\) scores: out {LINKS_REFUSED}"):
        load_array(where, "flag() scores")
    # A plain path handed to the track means the same: the worker made its last name.
    with pytest.raises(OutputError, match=f"out {LINKS_REFUSED}"):
        load_array(reply_file({"s": "scores.npy"}, "s", scratch / "out"), "flag() scores")


def test_a_linked_file_a_fifo_and_a_hard_link_are_refused_and_a_fifo_never_blocks(scratch):
    out = scratch / "out"
    (out / "link.npy").symlink_to(scratch.parent / "host" / "scores.npy")
    os.mkfifo(out / "fifo.npy")
    os.link(out / "scores.npy", out / "hard.npy")
    said = {}
    for name in ("link.npy", "fifo.npy", "hard.npy", "gone.npy"):
        done = threading.Event()

        def read(name: str = name, done: threading.Event = done) -> None:
            try:
                load_array(Inside(scratch, ("out", name)), "x")
            except OutputError as exc:
                said[name] = str(exc)
            done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(10), f"reading {name} blocked"
    assert said["link.npy"] == f"x: out/link.npy {LINKS_REFUSED}"
    assert said["fifo.npy"] == "x: out/fifo.npy is a FIFO: only regular files are read back"
    assert said["hard.npy"].endswith("has 2 hard links: hard-linked files are refused")
    assert said["gone.npy"] == "x: out/gone.npy is missing"


def test_names_that_leave_the_folder_are_refused(scratch):
    for parts in (("..", "host", "scores.npy"), ("out", "/etc/passwd"), ("",)):
        with pytest.raises(ReadbackError, match="not a plain path"):
            open_file(Inside(scratch, parts), "x")


def test_a_folder_is_copied_with_regular_files_and_folders_only(scratch, tmp_path):
    (scratch / "out" / "sub").mkdir()
    (scratch / "out" / "sub" / "w.bin").write_bytes(b"w")
    assert copy_folder(Inside(scratch, ("out",)), tmp_path / "kept", "configure output") == 2
    assert (tmp_path / "kept" / "sub" / "w.bin").read_bytes() == b"w"
    (scratch / "out" / "sub" / "truths").symlink_to(scratch.parent / "host")
    with pytest.raises(ReadbackError, match=f"^configure output: out/sub/truths {LINKS_REFUSED}$"):
        copy_folder(Inside(scratch, ("out",)), tmp_path / "again", "configure output")


def test_a_configure_output_that_is_a_link_keeps_nothing(scratch, tmp_path):
    from harness.execution.configure import _keep

    (scratch / "configured").symlink_to(scratch.parent / "host")
    final = tmp_path / "configured" / "key"
    with pytest.raises(ReadbackError, match=f"^configure output: configured {LINKS_REFUSED}$"):
        _keep(Inside(scratch, ("configured",)), final)
    assert not final.exists() and not list((tmp_path / "configured").glob(".*"))


# -- replies bounded, the store's refusal ----------------------------------------------------
def test_a_reply_nested_too_deep_or_too_big_is_refused_in_one_line():
    reply_object({"extra": nested(MAX_REPLY_DEPTH - 1)}, "result")
    for bad in ({"extra": nested(MAX_REPLY_DEPTH)}, {"extra": nested(900)}):
        with pytest.raises(OutputError, match="nested more than 32 levels deep") as caught:
            reply_object(bad, "result")
        assert "\n" not in str(caught.value)
    with pytest.raises(OutputError, match=f"more than {MAX_REPLY_VALUES} values"):
        reply_object({"extra": [0] * MAX_REPLY_VALUES}, "result")


def _record(outputs: dict) -> TaskRecord:
    return TaskRecord("r", "s", "h", False, "m", "mh", "detect", "ok", outputs, {}, None, None,
                      1.0, "bwrap")  # fmt: skip


def test_the_store_refuses_outputs_json_cannot_write_and_writes_nothing(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.ensure_run("r", "tiny", "z")
    for outputs in ({"extra": nested(100_000)}, {"extra": {1, 2}}):
        with pytest.raises(UnstorableTask, match="its outputs cannot be stored as JSON"):
            store.write_task(_record(outputs))
    assert store.tasks("r") == []
    store.write_task(_record({"extra": nested(10)}))
    assert [t.status for t in store.tasks("r")] == ["ok"]


# -- fuzz: near the seed; trigger: within the mask budget; the order of a job's tasks -------
def test_generated_inputs_far_from_their_seeds_are_refused():
    from harness.tracks.fuzz import near_seeds, seed_distance

    assert seed_distance("mnist") == 0.125 and seed_distance("synthfaces-10") == 0.1
    assert seed_distance("cifar10") == 0.1
    rng = np.random.default_rng(0)
    seeds = rng.random((4, 28, 28, 1)).astype(np.float32)
    idx = np.array([0, 1, 2, 3])
    near = np.clip(seeds + rng.normal(0, 0.05, seeds.shape), 0, 1).astype(np.float32)
    assert near_seeds(near, idx, seeds, (0.0, 1.0), 0.125).max() < 0.06
    patch = seeds.copy()
    patch[:, -3:, -3:] = 1.0  # a 3x3 trigger stamped: within the MNIST bound
    near_seeds(patch, idx, seeds, (0.0, 1.0), 0.125)
    with pytest.raises(OutputError, match="4 of 4 generated inputs lie farther from their seed"):
        near_seeds(seeds[[1, 2, 3, 0]], idx, seeds, (0.0, 1.0), 0.125)


def test_a_whole_image_trigger_is_over_budget_and_the_true_one_is_not():
    from harness.tracks.detect import DetectOutput, mask_budget, score_detection
    from harness.zoo.records import TruthRecord

    true = np.zeros((28, 28))
    true[-3:, -3:] = 1.0
    assert mask_budget([true], (28, 28)) == 18.0
    assert mask_budget([np.zeros((28, 28))], (28, 28)) == pytest.approx(7.84)
    assert mask_budget([], (28, 28)) == pytest.approx(78.4)  # no true trigger held
    truth = TruthRecord("m", "h", True, "badnets_patch", {}, [0], False, [[0] * 10], [9], 0.99,
                        0.98, 0.9, "mnist_cnn_b", 12, 1.0, "0")  # fmt: skip
    pattern = np.ones((28, 28, 1))
    whole = score_detection(DetectOutput(0.9, [0], np.ones((28, 28)), pattern), truth, [true])
    assert whole.trigger_over_budget is True and whole.trigger_iou == 0.0
    right = score_detection(DetectOutput(0.9, [0], true, pattern), truth, [true])
    assert right.trigger_over_budget is False and right.trigger_iou == 1.0


def test_a_job_runs_the_tasks_that_show_poisoned_inputs_last():
    from harness.execution.runner import job_order
    from harness.tracks import KINDS

    assert [k.name for k in job_order(list(KINDS))] == ["detect", "fuzz", "filter", "repair"]


# -- hostile hand-ins through the sandbox -----------------------------------------------------
def _case(tmp_path: Path, name: str, **params: object):
    from harness.submission.manifest import load_submission

    return load_submission(materialize(name, tmp_path / "cases", CASES, **params))


def _run(tmp_path: Path, specs: list, tracks: list[Track], models: list[str], **kw: object):
    from harness.execution.config import RunConfig
    from harness.execution.runner import run_submissions

    store = ResultsStore(tmp_path / "results.sqlite")
    profile = str(kw.pop("profile", "tiny"))
    config = RunConfig(backend="bwrap", run_id="readback", **kw)  # type: ignore[arg-type]
    run_submissions(specs, profile, tracks, store, config, model_ids=models)
    return {(r.submission, r.model_id, r.track): r for r in store.tasks("readback")}


@pytest.fixture(scope="module")
def linked_and_far(tmp_path_factory, tiny_zoo):
    """One run of two hostile cases on the patch BadNet: linked_out on the filter track and
    far_fuzz on the filter and fuzz tracks (each the other's second submission of the run;
    one run serves the two tests below, a sandbox start less than a run each)."""
    root = tmp_path_factory.mktemp("linked-and-far")
    planted = root / "planted"
    planted.mkdir()
    np.save(planted / "scores.npy", np.ones(750))  # what the old reader scored
    spec = _case(root, "linked_out", target=str(planted))
    other = _case(root, "far_fuzz")
    tasks = _run(root, [spec, other], [Track.FILTER, Track.FUZZ], [PATCH], fuzz_budget=60)
    return planted, spec, other, tasks


@pytest.mark.sandbox
def test_a_linked_output_folder_fails_its_task_and_the_host_folder_is_untouched(linked_and_far):
    planted, spec, other, tasks = linked_and_far
    rec = tasks[(spec.name, PATCH, "filter")]
    assert rec.status == "failed", rec.outputs
    assert rec.error == f"invalid output: flag() scores: out {LINKS_REFUSED}"
    assert tasks[(other.name, PATCH, "filter")].status == "ok"
    assert (planted / "scores.npy").is_file() and np.load(planted / "scores.npy").sum() == 750


@pytest.mark.sandbox
def test_a_linked_export_folder_is_refused(tmp_path, tiny_zoo):
    from harness.errors import HarnessError
    from harness.execution.goodnet import export_goodnet

    planted = tmp_path / "planted"
    folder = materialize("linked_out", tmp_path / "cases", CASES, target=str(planted))
    out = tmp_path / "goodnet.h5"
    with pytest.raises(HarnessError, match=f"predictions: out {LINKS_REFUSED}") as caught:
        export_goodnet(folder, next(m for m in tiny_zoo if m.id == A), out, backend="bwrap")
    assert "\n" not in caught.value.line() and not out.exists()


@pytest.mark.sandbox
def test_a_linked_poisoned_set_makes_its_instance_invalid(tmp_path, backend):
    from harness.attack_track.instance import poison_in_sandbox
    from harness.attack_track.recipe import TRAIN_RECIPES
    from harness.data import load_dataset
    from harness.sandbox.limits import SandboxLimits
    from harness.zoo.training import make_splits

    spec = _case(tmp_path, "linked_poisoned", target=str(tmp_path / "planted"))
    recipe = TRAIN_RECIPES["tiny"]
    data = load_dataset(recipe.dataset)
    entry = recipe.entry(spec.name, 0)
    got = poison_in_sandbox(spec, make_splits(data, entry), data, entry.seed, backend,
                            SandboxLimits())  # fmt: skip
    assert got.hand_in is None and got.status == "invalid", got
    assert got.error == f"PoisonedSet.x: poisoned {LINKS_REFUSED}"


TRAIN = {"mnist-clean-a-s1-v1", "mnist-badnets-patch3-t0-v1"}
SPLIT_PROFILE = "tiny-readback-split"


@pytest.fixture(scope="module")
def split_zoo(tiny_zoo):
    """tiny with two of its models as the labelled training split (as test_configure)."""
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import ZooProfile, load_profile
    from harness.zoo.splits import record

    tiny = load_profile("tiny")
    entries = tuple(
        dataclasses.replace(e, split="train") if e.id in TRAIN else e for e in tiny.entries
    )
    profile = ZooProfile(SPLIT_PROFILE, "tiny with a training split", entries, tiny.path)
    models = build_profile(profile)
    record(profile)
    return models


@pytest.mark.sandbox
def test_a_configure_step_that_links_its_output_to_the_zoo_fails_and_copies_nothing(
    tmp_path, split_zoo
):
    from harness.paths import harness_home
    from harness.zoo.store import ZooStore

    objects = ZooStore().root / "objects"
    folder = materialize("configure_link", tmp_path / "cases", CASES, target=str(objects))
    toml = folder / "submission.toml"
    toml.write_text(toml.read_text().replace("tracks =", "configure = true\ntracks =", 1))
    from harness.submission.manifest import load_submission

    spec, null = load_submission(folder), load_submission(REPO / "submissions" / "null")
    evaluated = sorted(m.id for m in split_zoo if m.id not in TRAIN)
    tasks = _run(tmp_path, [spec, null], [Track.DETECT], evaluated, profile=SPLIT_PROFILE)
    mine = [r for (s, _, _), r in tasks.items() if s == spec.name]
    assert len(mine) == len(evaluated) and all(r.status == "failed" for r in mine)
    assert {r.error for r in mine} == {f"configure output: configured {LINKS_REFUSED}"}
    assert all(r.status == "ok" for (s, _, _), r in tasks.items() if s == "null")
    assert not list((harness_home() / "configured").rglob("truth.json"))


@pytest.mark.sandbox
def test_a_reply_nested_900_deep_fails_its_task_alone_and_the_run_goes_on(tmp_path, tiny_zoo):
    db = tmp_path / "results.sqlite"
    folder = materialize("deep_extra", tmp_path / "cases", CASES)
    args = ("run", str(folder), str(REPO / "submissions" / "null"), "--profile", "tiny",
            "--tracks", "detect", "--backend", "bwrap", "--db", str(db), "--run-id", "deep")  # fmt: skip
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]  # as for any failed task
    assert f"{2 * len(tiny_zoo)} tasks done ({len(tiny_zoo)} failed)" in proc.stdout
    tasks = ResultsStore(db).tasks("deep")
    mine = [t for t in tasks if t.submission == "hostile-deep-extra"]
    assert len(mine) == len(tiny_zoo) and all(t.status == "failed" for t in mine)
    assert {t.error for t in mine} == {
        "invalid output: the reply's result is nested more than 32 levels deep; "
        "flatten Detection.extra"
    }
    assert all(t.status == "ok" for t in tasks if t.submission == "null")
    again = run_cli(*args)  # a rerun finds every task stored
    assert again.returncode == 0 and "0 tasks done (0 failed)" in again.stdout, again.stdout


@pytest.mark.integration
def test_a_task_the_store_cannot_write_is_stored_as_that_task_s_failure(tmp_path, tiny_zoo):
    from harness.execution.jobs import ModelJob
    from harness.execution.runner import store_task
    from harness.execution.task import TaskResult
    from harness.sandbox.limits import SandboxLimits
    from harness.submission.manifest import load_submission
    from harness.tracks import RunOptions

    spec = load_submission(REPO / "submissions" / "null")
    model = next(m for m in tiny_zoo if m.id == PATCH)
    job = ModelJob("r", spec, model, ("detect",), RunOptions(), SandboxLimits(), "bwrap", "h")
    store = ResultsStore(tmp_path / "results.sqlite")
    store.ensure_run("r", "tiny", "z")
    deep = TaskResult("ok", {"extra": nested(100_000)}, {"score": 0.9}, None, "err", 1.5)
    stored = store_task(store, job, "detect", deep, "bwrap")
    (rec,) = store.tasks("r")
    assert rec.status == stored.status == "failed" and rec.outputs == {}
    assert rec.error == stored.error
    assert rec.error.startswith("invalid output: its outputs cannot be stored as JSON")
    assert rec.scores == {"score": 0.5, "missing": True} and rec.seconds == 1.5


@pytest.mark.sandbox
def test_fuzzed_inputs_far_from_their_seeds_fail_and_filter_inputs_come_after(linked_and_far):
    _, _, spec, tasks = linked_and_far
    fuzz = tasks[(spec.name, PATCH, "fuzz")]
    assert fuzz.status == "failed"
    assert "generated inputs lie farther from their seed than 0.125" in fuzz.error, fuzz.error
    assert "filter inputs seen before generate: 0" in (fuzz.stderr_tail or "")
    assert fuzz.scores.get("activation_rate") is None
    assert tasks[(spec.name, PATCH, "filter")].status == "ok"


@pytest.mark.sandbox
def test_a_whole_image_trigger_earns_nothing(tmp_path, tiny_zoo):
    from harness.tracks.detect import trigger_asr
    from harness.zoo.predict import ModelPredictor

    spec = _case(tmp_path, "whole_image_trigger", target=0)
    rec = _run(tmp_path, [spec], [Track.DETECT], [PATCH])[(spec.name, PATCH, "detect")]
    assert rec.status == "ok", rec.error
    assert rec.scores["trigger_asr"] == 0.0 and rec.scores["trigger_iou"] == 0.0
    assert rec.scores["trigger_over_budget"] is True
    assert rec.outputs["trigger_mask_l1"] == 28 * 28
    # What it would have scored: the stamped images are the target-class image itself.
    model = next(m for m in tiny_zoo if m.id == PATCH)
    sets = model.test_sets()
    from harness.api import read_clean_data

    clean = read_clean_data(model.public_dir)
    image = clean.x[int(np.flatnonzero(clean.y == 0)[0])]
    stamped = np.repeat(image[None], 1000, axis=0)
    would = trigger_asr(ModelPredictor().labels(model, stamped), sets.y[:1000],
                        model.truth().target_maps)  # fmt: skip
    assert would > 0.9


def _checked(tmp_path: Path, name: str, models: list, other: str) -> dict:
    """The time budget check and ``other`` on the hostile case ``name``."""
    from harness.conformance import check_submission

    folder = materialize(name, tmp_path / "cases", CASES)
    only = ["check_time_budget", other]
    return {r.check: r for r in check_submission(folder, models, backend="bwrap", only=only)}


@pytest.mark.sandbox
def test_the_time_budget_is_measured_by_the_harness_not_reported_by_the_worker(tmp_path, tiny_zoo):
    """Beside the time budget, a check that reads the task's own results (the weights
    left unchanged) must pass: not the same-seed check, which would run the case's
    five-second task again in a fresh sandbox (the next test runs it)."""
    got = _checked(
        tmp_path, "lying_clock", [next(m for m in tiny_zoo if m.id == A)], "check_weights_unchanged"
    )
    budget = got["check_time_budget"]
    assert not budget.passed, budget
    assert "(timed by the harness)" in budget.message and "the budget is 4 s" in budget.message
    took = float(budget.message.split(" took ")[1].split(" s")[0])
    assert 5.0 <= took < 8.0, budget.message
    assert got["check_weights_unchanged"].passed, got["check_weights_unchanged"]


@pytest.mark.sandbox
def test_answers_cached_in_the_module_do_not_pass_the_same_seed_check(tmp_path, tiny_zoo):
    got = _checked(
        tmp_path, "cached_answers", [next(m for m in tiny_zoo if m.id == A)], "check_same_seed"
    )
    same = got["check_same_seed"]
    assert not same.passed and same.message.startswith("two runs with the same seed differ: score")
    assert got["check_time_budget"].passed, got["check_time_budget"]
