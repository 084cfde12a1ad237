"""The attack track end to end, through the real sandbox, on the `tiny` training recipe:
hand-ins poison in bwrap, the harness trains and stores their models, defenses run on
them, the table scores them, a rerun reuses everything, and a final round is a zoo the
defenses run on. The hostile hand-ins of tests/hostile_attacks/ are contained: each
listed invalid or failed with its reason, none able to see a test set."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO
from hostile_cases import materialize

from harness.api import Track
from harness.attack_track.final_round import from_attacks
from harness.attack_track.recipe import TRAIN_RECIPES
from harness.attack_track.run import index_name, run_attack_track
from harness.attack_track.score import Validity, run_rows
from harness.execution.config import RunConfig
from harness.execution.runner import run_submissions
from harness.report.attack_track import markdown, to_csv
from harness.results import ResultsStore
from harness.submission.manifest import load_submission
from harness.zoo.store import ZooStore

pytestmark = pytest.mark.sandbox
HOSTILE = REPO / "tests" / "hostile_attacks"
TINY = TRAIN_RECIPES["tiny"]

#: How each hostile hand-in must end: (instance status, words of its reason).
EXPECTED = {
    "relabel_half": ("invalid", "of the training set; the track allows 20%"),
    "out_of_range": ("invalid", "outside the input range"),
    "short_set": ("invalid", "keep the training set's"),
    "not_a_set": ("invalid", "returned dict, not harness.api.PoisonedSet"),
    "crash": ("failed", "this attack crashed on purpose"),
    "snoop": ("ok", None),
}


def test_every_hostile_attack_case_has_an_expectation():
    assert {p.stem for p in HOSTILE.glob("*.py")} == set(EXPECTED)


@pytest.fixture(scope="module")
def badnets():
    return load_submission(REPO / "submissions" / "attacks" / "badnets-patch")


class TestHostile:  # a class each: xdist's loadscope runs them side by side
    def test_hostile_hand_ins_are_listed_with_their_reason_and_lose_no_other_result(
        self, badnets, tmp_path, backend
    ):
        _hostile(badnets, tmp_path, backend)


class TestTrack:
    def test_the_track_trains_scores_resumes_and_makes_a_final_round(
        self, badnets, tmp_path, backend
    ):
        _track(badnets, tmp_path, backend)


def _hostile(badnets, tmp_path, backend):
    hostile = [load_submission(materialize(n, tmp_path / "cases", HOSTILE)) for n in EXPECTED]
    null = load_submission(REPO / "submissions" / "null")
    store = ResultsStore(tmp_path / "results.sqlite")
    summary = run_attack_track([*hostile, badnets], [null], TINY, 1, store,
                               RunConfig(backend=backend, run_id="hostile"))  # fmt: skip
    instances = {i.attack: i for i in store.attack_instances("hostile")}
    for name, (status, words) in EXPECTED.items():
        got = instances[f"hostile-{name.replace('_', '-')}"]
        assert got.status == status, (name, got.error)
        if words:
            assert words in str(got.error), (name, got.error)
    snoop = instances["hostile-snoop"]
    assert "0 forbidden" in str(snoop.stderr_tail), snoop.stderr_tail  # no test set in view
    seen = int(str(snoop.stderr_tail).split("snoop: ")[1].split(" files")[0])
    assert seen > 1000, snoop.stderr_tail  # it did walk the file system
    assert "env ['HARNESS_GIVEN_DIR', 'HARNESS_THREADS']" in str(snoop.stderr_tail)
    assert instances["attack-badnets-patch"].status == "ok"
    assert summary.invalid == 5 and summary.built == 7
    # The defense ran on the two valid hand-ins' models alone, every task scored.
    detect = [r for r in store.tasks("hostile") if r.track == Track.DETECT.value]
    assert len(detect) == 4 and all(r.status == "ok" for r in detect)
    rows = {r.attack: r for r in run_rows(store, "hostile")}
    assert not rows["hostile-relabel-half"].valid
    assert "the track allows 20%" in str(rows["hostile-relabel-half"].reason)
    table = markdown(run_rows(store, "hostile"))
    assert "no: instance 0 invalid: poison() relabelled 4" in table


def _track(badnets, tmp_path, backend):
    null = load_submission(REPO / "submissions" / "null")
    strip = load_submission(REPO / "submissions" / "strip")
    store = ResultsStore(tmp_path / "results.sqlite")
    config = RunConfig(backend=backend, run_id="t")
    first = run_attack_track([badnets], [null, strip], TINY, 2, store, config)
    assert first.built == 2 and first.defenses is not None and first.defenses.failed == 0
    zoo = ZooStore()
    models = {m.id: m for m in zoo.models(index_name("t"))}
    assert set(models) == {
        "attack-badnets-patch-0", "attack-badnets-patch-0-counterpart",
        "attack-badnets-patch-1", "attack-badnets-patch-1-counterpart",
    }  # fmt: skip
    backdoored = models["attack-badnets-patch-0"].truth()
    counterpart = models["attack-badnets-patch-0-counterpart"].truth()
    assert backdoored.poisoned and backdoored.targets == [0] and backdoored.trigger_sizes == [9]
    assert counterpart.poisoned is False and counterpart.role == "counterpart"
    with np.load(models["attack-badnets-patch-0"].private_dir / "poisoned_test.npz") as npz:
        assert len(npz["x"]) > 0 and set(npz["y_tgt"].tolist()) == {0}

    (row,) = run_rows(store, "t")
    assert row.built == 2 and row.asr is not None and row.asr > 0.5  # the patch takes
    assert row.auc["null"] == 0.5 and row.evasion == 0.5  # the only detector is chance
    assert row.filter_auc["strip"] > 0.5  # STRIP tells stamped inputs from clean ones
    assert "attack-badnets-patch" in to_csv([row])

    again = run_attack_track([badnets], [null, strip], TINY, 2, store, config)
    assert again.built == 0 and again.reused == 2
    assert again.defenses is not None and again.defenses.done == 0

    from harness.report import render_report

    written = {p.name: p for p in render_report(store, tmp_path / "site", "t")}
    assert "## Attack track" in written["LEADERBOARD.md"].read_text()
    assert "attack-badnets-patch" in written["attack-track.csv"].read_text()
    index = written["index.html"].read_text()
    assert 'id="attack-track"' in index and "hand-in:attack-badnets-patch" in index  # matrix

    taken, n = from_attacks(store, "t", "final-test", 1, rule=Validity(0.0, 100.0))
    assert taken == ["attack-badnets-patch"] and n == 4
    final = ResultsStore(tmp_path / "final.sqlite")
    done = run_submissions([null], "final-test", [Track.DETECT], final, RunConfig(backend=backend))
    assert done.done == 4 and done.failed == 0
