"""Learned detectors: the configure step over a profile's labelled training split, in the
sandbox, once; its output read-only for the tasks; the evaluation truth out of its reach.
On `tiny` with two of its models marked split = "train" (the same objects: nothing trains)."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from conftest import REPO

from harness.api import Track
from harness.execution.config import RunConfig
from harness.execution.runner import run_submissions
from harness.results import ResultsStore
from harness.submission.manifest import load_submission

pytestmark = pytest.mark.sandbox
TRAIN = {"mnist-clean-a-s1-v1", "mnist-badnets-patch3-t0-v1"}
PROFILE = "tiny-split"


@pytest.fixture(scope="module")
def split_zoo(tiny_zoo):
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import ZooProfile, load_profile
    from harness.zoo.splits import record

    tiny = load_profile("tiny")
    entries = tuple(
        dataclasses.replace(e, split="train") if e.id in TRAIN else e for e in tiny.entries
    )
    profile = ZooProfile(PROFILE, "tiny with a training split", entries, tiny.path)
    models = build_profile(profile)
    record(profile)
    return models


def _detections(store: ResultsStore, name: str) -> dict[str, dict]:
    return {
        r.model_id: r.outputs
        for r in store.tasks(PROFILE)
        if r.submission == name and r.track == Track.DETECT.value and r.status == "ok"
    }


class _Notes:
    """A run's progress lines (harness.execution.runner.RunProgress), kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def planned(self, todo: int, skipped: int) -> None:
        pass

    def task_done(self, *args: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_meta_weights_configures_once_and_scores_the_evaluation_split(split_zoo, tmp_path, backend):
    from harness.paths import harness_home

    spec = load_submission(REPO / "submissions" / "meta-weights")
    store = ResultsStore(tmp_path / "results.sqlite")
    notes = _Notes()
    summary = run_submissions(
        [spec], PROFILE, [Track.DETECT], store, RunConfig(backend=backend), progress=notes
    )
    assert summary.failed == 0, [r.error for r in store.tasks(PROFILE)]
    assert [n.split(" in ")[0] for n in notes.lines] == [
        f"meta-weights: configured on {PROFILE!r}'s training split"
    ]
    scores = _detections(store, "meta-weights")
    assert set(scores) == {m.id for m in split_zoo} - TRAIN
    assert all(0.0 <= o["score"] <= 1.0 for o in scores.values())
    kept = list((harness_home() / "configured").glob("*/weights.npz"))
    fitted = [p for p in kept if int(np.load(p)["models"]) == 2]
    assert fitted and int(np.load(fitted[0])["backdoored"]) == 1
    assert np.load(fitted[0])["families"].tolist() == ["28x28x1/10"]  # both MNIST nets
    stamp = fitted[0].stat().st_mtime_ns
    again = run_submissions(
        [spec], PROFILE, [Track.DETECT], store, RunConfig(backend=backend, run_id="again")
    )
    assert again.failed == 0 and fitted[0].stat().st_mtime_ns == stamp  # configured once


def test_configure_sees_the_training_split_alone_and_tasks_cannot_change_its_output(
    split_zoo, tmp_path, backend
):
    spec = load_submission(REPO / "tests" / "submissions" / "configure_snoop")
    store = ResultsStore(tmp_path / "results.sqlite")
    null = load_submission(REPO / "submissions" / "null")
    summary = run_submissions(
        [spec, null], PROFILE, [Track.DETECT], store, RunConfig(backend=backend)
    )
    assert summary.failed == 0, [r.error for r in store.tasks(PROFILE)]
    reports = _detections(store, "configure-snoop")
    assert set(reports) == {m.id for m in split_zoo} - TRAIN == set(_detections(store, "null"))
    report = next(iter(reports.values()))["extra"]
    truths = [p for p in report["found"] if p.endswith("truth.json")]
    assert sorted(truths) == sorted(f"/training/{m}/truth.json" for m in TRAIN), report
    assert not [p for p in report["found"] if "results.sqlite" in p], report
    assert report["files_seen"] > 100  # it did walk the file system
    assert report["reachable"] == [], report  # no harness cache or home folder of the host
    assert set(report["env"]) == {"HARNESS_THREADS", "HARNESS_TRAINING_DIR"}, report
    assert all(r["extra"]["wrote_configured"] is False for r in reports.values())


def test_a_configure_step_without_a_training_split_fails_its_tasks_alone(
    tiny_zoo, tmp_path, backend
):
    spec = load_submission(REPO / "submissions" / "meta-weights")
    null = load_submission(REPO / "submissions" / "null")
    store = ResultsStore(tmp_path / "results.sqlite")
    two = ["mnist-clean-b-s2-v1", "mnist-badnets-patch3-t0-v1"]
    run_submissions(
        [spec, null], "tiny", [Track.DETECT], store, RunConfig(backend=backend), model_ids=two
    )
    records = store.tasks("tiny")
    mine = [r for r in records if r.submission == "meta-weights"]
    assert len(mine) == 2 and all(r.status == "failed" for r in mine)
    assert all("has no training split" in (r.error or "") for r in mine)
    assert all(r.status == "ok" for r in records if r.submission == "null")
    json.dumps([r.error for r in mine])


def test_a_learned_detector_configures_on_another_profile_but_never_on_the_run_s_models(
    split_zoo, toy_zoo, tmp_path, backend
):
    from harness.errors import HarnessError

    spec = load_submission(REPO / "submissions" / "meta-weights")
    store = ResultsStore(tmp_path / "results.sqlite")
    with pytest.raises(HarnessError, match="a learned detector would see their truth"):
        run_submissions([spec], "tiny", [Track.DETECT], store,
                        RunConfig(backend=backend, configure_on=PROFILE))  # fmt: skip
    summary = run_submissions([spec], "toy", [Track.DETECT], store,
                              RunConfig(backend=backend, configure_on=PROFILE))  # fmt: skip
    assert summary.done == len(toy_zoo) and summary.failed == 0, [
        r.error for r in store.tasks("toy")
    ]


def test_meta_weights_standardises_a_model_within_its_family_and_an_unseen_one_over_all():
    """A feature is read in its architecture family's units: an MNIST net by the MNIST
    training models' spread, a family the training split never held by the whole split's."""
    from refsubs import entry_class

    from harness.api import CleanData

    module = sys.modules[entry_class("meta-weights").__module__]
    standardise, family = module._standardise, module.family
    width = 3
    units = {
        "mean": np.zeros(width),
        "scale": np.full(width, 10.0),
        "families": np.array(["28x28x1/10"]),
        "family_mean": np.array([[1.0, 2.0, 3.0]]),
        "family_scale": np.array([[0.5, 0.5, 0.5]]),
    }
    vector = np.array([2.0, 2.0, 2.0])
    mnist = CleanData(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int64), 10)
    faces = CleanData(np.zeros((2, 55, 47, 3), np.float32), np.zeros(2, np.int64), 1283)
    np.testing.assert_allclose(standardise(vector, family(mnist), units), [2.0, 0.0, -2.0])
    np.testing.assert_allclose(standardise(vector, family(faces), units), [0.2, 0.2, 0.2])
