"""The filter, fuzz and trigger tracks end to end through the sandbox, with answers whose
scores are known, and the oracle hand-over of poisoned samples."""

import dataclasses
import shutil

import numpy as np
import pytest
from conftest import HOSTILE
from refsubs import by_id

from harness.api import Track
from harness.execution.config import RunConfig
from harness.execution.runner import run_submissions
from harness.results import ResultsStore
from harness.submission.manifest import load_submission
from harness.tracks import aggregate

pytestmark = pytest.mark.sandbox
PATCH = "mnist-badnets-patch3-t0-v1"


@pytest.fixture(scope="module")
def known_run(tmp_path_factory, tiny_zoo, backend):
    """known-answers, handed the patch BadNet's true trigger, on every tiny model."""
    folder = tmp_path_factory.mktemp("sub") / "known_answers"
    shutil.copytree(HOSTILE / "known_answers", folder)
    mask, pattern = by_id(tiny_zoo, PATCH).triggers()[0]
    np.savez(folder / "answers.npz", mask=mask, pattern=pattern)
    store = ResultsStore(tmp_path_factory.mktemp("db") / "results.sqlite")
    tracks = [Track.DETECT, Track.FILTER, Track.FUZZ]
    summary = run_submissions(
        [load_submission(folder)], "tiny", tracks, store, RunConfig(backend=backend, fuzz_budget=60)
    )
    assert summary.failed == 0, [r.error for r in store.tasks("tiny") if r.error]
    return {(r.model_id, r.track): r for r in store.tasks("tiny")}, store


def test_the_true_trigger_scores_iou_one_and_its_own_asr(known_run, tiny_zoo):
    recs, _ = known_run
    patch = recs[(PATCH, "detect")].scores
    assert patch["trigger_iou"] == 1.0
    assert patch["trigger_asr"] == pytest.approx(by_id(tiny_zoo, PATCH).truth().asr, abs=0.03)
    assert "trigger_asr" not in recs[("mnist-clean-a-s1-v1", "detect")].scores


def test_a_filter_matching_the_trigger_separates_poisoned_inputs(known_run, tiny_zoo):
    recs, _ = known_run
    patch = recs[(PATCH, "filter")]
    assert patch.scores["filter_auc"] == 1.0 and patch.scores["far_at_1frr"] == 0.0
    assert patch.scores["filter_tpr"] == 1.0
    n_test = len(by_id(tiny_zoo, PATCH).test_sets().y)  # half clean, a quarter poisoned
    assert patch.outputs["n_scores"] == n_test // 2 + n_test // 4
    clean = recs[("mnist-clean-a-s1-v1", "filter")].scores
    assert "filter_auc" not in clean and clean["filter_frr"] == 0.0


def test_stamping_the_trigger_activates_the_backdoor_and_not_clean_models(known_run, tiny_zoo):
    recs, _ = known_run
    patch = recs[(PATCH, "fuzz")].scores
    assert patch["n_generated"] == 60
    assert patch["activation_rate"] > 0.9, patch
    for model in tiny_zoo:
        if not model.truth().poisoned:
            assert recs[(model.id, "fuzz")].scores["activation_rate"] < 0.1


def test_aggregates_and_leaderboard_hold_the_new_tracks(known_run, tmp_path):
    from harness.report import render_leaderboard as render

    _, store = known_run
    names = {(s.track, s.metric) for s in aggregate(store.tasks("tiny"))}
    for key in [
        ("filter", "filter_auc"),
        ("filter", "far_at_1frr"),
        ("filter", "filter_frr"),
        ("fuzz", "activation_rate"),
        ("fuzz", "activation_rate_clean_models"),
        ("trigger", "trigger_asr"),
        ("trigger", "trigger_iou"),
    ]:
        assert key in names
    md = render(store, tmp_path)[0].read_text()
    assert "## Input filtering" in md and "## Fuzzing" in md and "trigger_asr" in md


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("over_budget", "the budget is 60"),
        ("out_of_range", "leave the input range"),
        ("bad_seed_index", "seed_index values must lie in"),
    ],
)
def test_broken_fuzz_outputs_fail_with_the_reason(mode, says, tmp_path, tiny_zoo, backend):
    spec = load_submission(HOSTILE / "bad_fuzz")
    spec = dataclasses.replace(spec, params={"mode": mode}, content_hash=mode)
    store = ResultsStore(tmp_path / "results.sqlite")
    run_submissions(
        [spec],
        "tiny",
        [Track.FUZZ],
        store,
        RunConfig(backend=backend, fuzz_budget=60),
        model_ids=[PATCH],
    )
    (rec,) = store.tasks("tiny")
    assert rec.status == "failed" and says in rec.error, rec.error
    assert next(s for s in aggregate([rec]) if s.metric == "activation_rate").value == 0.0


def test_oracle_submissions_get_poisoned_samples_only_of_backdoored_models(
    tmp_path, tiny_zoo, backend
):
    store = ResultsStore(tmp_path / "results.sqlite")
    run_submissions(
        [load_submission(HOSTILE / "oracle_peek")],
        "tiny",
        [Track.DETECT],
        store,
        RunConfig(backend=backend),
    )
    for rec in store.tasks("tiny"):
        poisoned = by_id(tiny_zoo, rec.model_id).truth().poisoned
        assert (rec.outputs["extra"]["poisoned_seen"] > 0) == poisoned
    auc = next(s for s in aggregate(store.tasks("tiny")) if s.metric == "auc")
    assert auc.value == 1.0 and auc.oracle
