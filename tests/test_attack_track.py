"""The attack track end to end, through the real sandbox, on the `tiny` training recipe:
hand-ins poison in bwrap, the harness trains and stores their models, defenses run on
them, the table scores them, a rerun reuses everything, and a final round is a zoo the
defenses run on. The hostile hand-ins of tests/hostile_attacks/ are contained: each
listed invalid or failed with its reason, none able to see a test set.

What runs where (each hand-in instance is a sandbox start, about 3 s, and an instance that
poisons within the limits trains two models): `make test` runs the track on one instance
of BadNets, and four hostile hand-ins (one invalid, the whole-image "trigger" the budget
refuses, one crashed, the snoop, whose plain BadNets is the valid hand-in there) in one run; `make test-slow` runs the track on two
instances, and the other hostile hand-ins beside the reference BadNets."""

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
    "whole_image": ("invalid", "the track's budget is 0.3"),
    "crash": ("failed", "this attack crashed on purpose"),
    "snoop": ("ok", None),
}


def test_every_hostile_attack_case_has_an_expectation():
    assert {p.stem for p in HOSTILE.glob("*.py")} == set(EXPECTED)


@pytest.fixture(scope="module")
def badnets():
    return load_submission(REPO / "submissions" / "attacks" / "badnets-patch")


#: The hostile hand-ins `make test` runs together: one invalid set, the whole-image "trigger"
#: (success without a backdoor, refused by the trigger budget), one crash, and the snoop
#: (the sandbox's view of the file system; it hands in a plain BadNets, the run's valid
#: hand-in). `make test-slow` runs the rest beside the reference BadNets: every other way to
#: break the contract goes through the same check (harness.tracks.attack.read_poisoned, each
#: of its refusals also a unit test in tests/test_attack_contract.py) and the same listing,
#: each one more sandbox start (about 3 s).
HOSTILE_FAST = ("relabel_half", "whole_image", "crash", "snoop")
HOSTILE_SLOW = tuple(n for n in EXPECTED if n not in HOSTILE_FAST)


class TestHostile:  # a class each: xdist's loadscope runs them side by side
    @pytest.mark.parametrize(
        "names, with_badnets",
        [
            pytest.param(HOSTILE_FAST, False, id="invalid-whole-image-crash-snoop"),
            pytest.param(HOSTILE_SLOW, True, marks=pytest.mark.slow, id="the-rest"),
        ],
    )
    def test_hostile_hand_ins_are_listed_with_their_reason_and_lose_no_other_result(
        self, badnets, tmp_path, backend, names, with_badnets
    ):
        _hostile(names, [badnets] if with_badnets else [], tmp_path, backend)


class TestTrack:
    # `make test`: one instance (a pair of models) is enough for what this checks (the
    # models stored with their truth, the table, the resume, the report, the final round);
    # `make test-slow`: two instances, each with its own seed and model ids.
    @pytest.mark.parametrize(
        "instances",
        [
            pytest.param(1, id="one-instance"),
            pytest.param(2, marks=pytest.mark.slow, id="two-instances"),
        ],
    )
    def test_the_track_trains_scores_resumes_and_makes_a_final_round(
        self, badnets, tmp_path, backend, instances
    ):
        _track(badnets, instances, tmp_path, backend)


def _hostile(names, valid, tmp_path, backend):
    """The hostile hand-ins ``names`` and the hand-ins ``valid`` in one run, one instance each."""
    hostile = [load_submission(materialize(n, tmp_path / "cases", HOSTILE)) for n in names]
    null = load_submission(REPO / "submissions" / "null")
    store = ResultsStore(tmp_path / "results.sqlite")
    summary = run_attack_track([*hostile, *valid], [null], TINY, 1, store,
                               RunConfig(backend=backend, run_id="hostile"))  # fmt: skip
    instances = {i.attack: i for i in store.attack_instances("hostile")}
    for name in names:
        status, words = EXPECTED[name]
        got = instances[f"hostile-{name.replace('_', '-')}"]
        assert got.status == status, (name, got.error)
        if words:
            assert words in str(got.error), (name, got.error)
    if "snoop" in names:
        snoop = instances["hostile-snoop"]
        assert "0 forbidden" in str(snoop.stderr_tail), snoop.stderr_tail  # no test set in view
        seen = int(str(snoop.stderr_tail).split("snoop: ")[1].split(" files")[0])
        assert seen > 1000, snoop.stderr_tail  # it did walk the file system
        assert "env ['HARNESS_GIVEN_DIR', 'HARNESS_THREADS']" in str(snoop.stderr_tail)
    for spec in valid:
        assert instances[spec.name].status == "ok"
    ok = [n for n in names if EXPECTED[n][0] == "ok"] + [s.name for s in valid]
    assert summary.invalid == len(names) + len(valid) - len(ok)
    assert summary.built == len(names) + len(valid)
    # The defense ran on the valid hand-ins' models alone (each a backdoored model and its
    # counterpart), every task scored.
    detect = [r for r in store.tasks("hostile") if r.track == Track.DETECT.value]
    assert len(detect) == 2 * len(ok) and all(r.status == "ok" for r in detect)
    rows = {r.attack: r for r in run_rows(store, "hostile")}
    for name in names:
        if EXPECTED[name][0] != "ok":
            row = rows[f"hostile-{name.replace('_', '-')}"]
            assert not row.valid and EXPECTED[name][1] in str(row.reason), (name, row.reason)
    if "relabel_half" in names:
        table = markdown(run_rows(store, "hostile"))
        assert "no: instance 0 invalid: poison() relabelled 4" in table


def _track(badnets, n, tmp_path, backend):
    null = load_submission(REPO / "submissions" / "null")
    strip = load_submission(REPO / "submissions" / "strip")
    store = ResultsStore(tmp_path / "results.sqlite")
    config = RunConfig(backend=backend, run_id="t")
    first = run_attack_track([badnets], [null, strip], TINY, n, store, config)
    assert first.built == n and first.defenses is not None and first.defenses.failed == 0
    zoo = ZooStore()
    models = {m.id: m for m in zoo.models(index_name("t"))}
    ids = [f"attack-badnets-patch-{k}" for k in range(n)]
    assert set(models) == {*ids, *(f"{i}-counterpart" for i in ids)}
    backdoored = models["attack-badnets-patch-0"].truth()
    counterpart = models["attack-badnets-patch-0-counterpart"].truth()
    assert backdoored.poisoned and backdoored.targets == [0] and backdoored.trigger_sizes == [9]
    assert counterpart.poisoned is False and counterpart.role == "counterpart"
    with np.load(models["attack-badnets-patch-0"].private_dir / "poisoned_test.npz") as npz:
        assert len(npz["x"]) > 0 and set(npz["y_tgt"].tolist()) == {0}

    (row,) = run_rows(store, "t")
    assert row.built == n and row.asr is not None and row.asr > 0.5  # the patch takes
    # ... in the model: the counterpart, trained on the same images with their true labels,
    # does not answer the patch with the target.
    assert row.counterpart_asr is not None and row.counterpart_asr < 0.2
    assert row.auc["null"] == 0.5 and row.evasion == 0.5  # the only detector is chance
    assert row.filter_auc["strip"] > 0.5  # STRIP tells stamped inputs from clean ones
    assert "attack-badnets-patch" in to_csv([row])

    again = run_attack_track([badnets], [null, strip], TINY, n, store, config)
    assert again.built == 0 and again.reused == n
    assert again.defenses is not None and again.defenses.done == 0

    from harness.report import render_report

    written = {p.name: p for p in render_report(store, tmp_path / "site", "t")}
    assert "## Attack track" in written["LEADERBOARD.md"].read_text()
    assert "attack-badnets-patch" in written["attack-track.csv"].read_text()
    index = written["index.html"].read_text()
    assert 'id="attack-track"' in index and "hand-in:attack-badnets-patch" in index  # matrix

    taken, size = from_attacks(store, "t", "final-test", 1, rule=Validity(0.0, 100.0))
    assert taken == ["attack-badnets-patch"] and size == 2 * n
    final = ResultsStore(tmp_path / "final.sqlite")
    done = run_submissions([null], "final-test", [Track.DETECT], final, RunConfig(backend=backend))
    assert done.done == 2 * n and done.failed == 0


#: The recipe docs/ATTACK-TRACK.md runs each reference hand-in on.
DOCUMENTED_RECIPE = {
    "badnets-patch": "mnist",
    "blended": "mnist",
    "random-trigger": "mnist-stealthy",
    "reconstructed-trigger": "mnist-stealthy",
    "sig": "mnist",
    "wanet": "mnist",
    "adaptive-blend": "mnist",
}
#: Reference hand-ins measured short of the track's rule as their papers write them
#: (docs/ATTACK-TRACK.md gives every variant tried); not in the validity check.
SHORT_OF_THE_RULE = {"label-consistent": "mnist", "refool": "mnist-12k"}


def test_every_reference_hand_in_has_its_documented_recipe():
    """A new hand-in in submissions/attacks/ is placed on purpose: checked valid on its recipe
    by make test-slow, or listed as short of the rule; and the docs name the same recipe."""
    folders = {p.name for p in (REPO / "submissions" / "attacks").iterdir() if p.is_dir()}
    assert folders == set(DOCUMENTED_RECIPE) | set(SHORT_OF_THE_RULE)
    docs = (REPO / "docs" / "ATTACK-TRACK.md").read_text()
    for name, recipe in {**DOCUMENTED_RECIPE, **SHORT_OF_THE_RULE}.items():
        assert recipe in TRAIN_RECIPES
        assert f"| `{name}` | `{recipe}` |" in docs, name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DOCUMENTED_RECIPE))
def test_a_reference_hand_in_is_valid_on_the_recipe_the_docs_run_it_on(name, tmp_path, backend):
    """Each reference hand-in must be valid on the recipe docs/ATTACK-TRACK.md runs it on,
    under the track's rule (ASR, ASR above the counterpart's, trigger budget, CA drop), one
    instance each (two models of 4 or 6 epochs on 59,500 images)."""
    spec = load_submission(REPO / "submissions" / "attacks" / name)
    null = load_submission(REPO / "submissions" / "null")
    store = ResultsStore(tmp_path / "results.sqlite")
    config = RunConfig(backend=backend, run_id="refs")
    recipe = TRAIN_RECIPES[DOCUMENTED_RECIPE[name]]
    run_attack_track([spec], [null], recipe, 1, store, config)
    (row,) = run_rows(store, "refs")
    assert row.valid, row.reason
    assert row.counterpart_asr is not None and row.counterpart_asr < 0.05
