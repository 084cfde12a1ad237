"""`make test-slow`: acceptance figures on the default (demo) zoo: models' CA and ASR, the
null submission's floor, and fine-pruning's DER and clean CA on the MNIST models."""

import math

import pytest
from conftest import REPO

from harness.api import Track
from harness.execution.config import RunConfig
from harness.execution.runner import run_submissions
from harness.results import ResultsStore
from harness.submission.manifest import load_submission
from harness.tracks import aggregate
from harness.zoo.builder import build_profile
from harness.zoo.spec import load_profile

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def test_default_zoo_reference_figures(tmp_path, backend):
    models = build_profile(load_profile("default"))
    for model in models:
        truth = model.truth()
        assert truth.ca > 0.97 and (truth.asr is None or truth.asr > 0.9)
    store = ResultsStore(tmp_path / "r.sqlite")
    specs = [load_submission(REPO / "submissions" / n) for n in ("null", "fine-pruning")]
    mnist = [m.id for m in models if m.card().dataset == "mnist"]
    # The face models' tasks (fine-pruning: about 2 minutes each) run in `make demo`; the
    # reference figures below are the MNIST ones.
    run_submissions(
        specs,
        "default",
        [Track.DETECT, Track.REPAIR],
        store,
        RunConfig(backend=backend),
        model_ids=mnist,
    )
    scores = {(s.submission, s.metric): s.value for s in aggregate(store.tasks("default"))}
    assert math.isclose(scores[("null", "ce")], math.log(2), abs_tol=1e-9)
    assert scores[("null", "auc")] == 0.5
    recs = {
        r.model_id: r
        for r in store.tasks("default")
        if r.submission == "fine-pruning" and r.track == "repair"
    }
    assert recs["mnist-badnets-patch3-t0-v1"].scores["der"] > 0.8
    for model in models:
        if not model.truth().poisoned and model.id in mnist:
            assert recs[model.id].scores["ca"] > model.truth().ca - 0.05
