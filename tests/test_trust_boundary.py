"""The trust boundary between replicates: module state of a hand-in does not carry from one
replicate (`--seeds K`) to the next, since each replicate is a fresh instance."""

from __future__ import annotations

import pytest
from hostile_cases import materialize

from harness.api import Track
from harness.execution.config import RunConfig
from harness.execution.runner import run_submissions
from harness.results import ResultsStore
from harness.submission.manifest import load_submission

pytestmark = pytest.mark.sandbox

A = "mnist-clean-a-s1-v1"


def test_each_replicate_is_a_fresh_worker(tmp_path, tiny_zoo):
    spec = load_submission(materialize("replicate_memory", tmp_path / "cases"))
    store = ResultsStore(tmp_path / "results.sqlite")
    run_submissions(
        [spec], "tiny", [Track.DETECT], store,
        RunConfig(backend="bwrap", run_id="replicates", seeds=2), model_ids=[A],
    )  # fmt: skip
    tasks = store.tasks("replicates")
    assert sorted(t.replicate for t in tasks) == [0, 1]
    for task in tasks:
        assert task.status == "ok", task.error
        assert "models seen before this task: 0" in (task.stderr_tail or ""), task.replicate
