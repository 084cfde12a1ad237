"""Nothing a submission can read, short of running the model, tells its truth: the public
bundle's bytes do not depend on when or in which order a profile was built, older bundles
are migrated, and a hostile hand-in that scores from the inbox's bytes alone scores 0.5."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import HOSTILE

from harness.zoo.builder import build_profile
from harness.zoo.bundle import (
    BUNDLE_FORMAT,
    FIXED_DATE_SAVED,
    STAMP_FILE,
    read_stamp,
)
from harness.zoo.spec import load_profile
from harness.zoo.store import PUBLIC_FILES, ZooStore


def _public_bytes(model) -> dict[str, bytes]:
    return {name: (model.public_dir / name).read_bytes() for name in PUBLIC_FILES}


def test_the_model_file_carries_no_save_time(toy_zoo):
    for model in toy_zoo:
        with zipfile.ZipFile(model.public_dir / "model.keras") as z:
            meta = json.loads(z.read("metadata.json"))
        assert meta["date_saved"] == FIXED_DATE_SAVED, meta
        assert json.loads((model.public_dir / "card.json").read_text())["format_version"] == (
            BUNDLE_FORMAT
        )
        assert read_stamp(model.root)["format"] == BUNDLE_FORMAT


def test_bundles_are_byte_identical_whatever_the_build_order(tmp_path):
    """The toy zoo builds clean first; building it backdoored first, later, in another
    store, must give the same bytes for every public file. Both builds run here, in one
    process: the test zoo cache may hold objects trained on another thread count, whose
    weights differ in their last bits (docs/ZOO.md, "Determinism and caching"). The bytes,
    not the models' quality, are checked: each entry trains one epoch on 1000 images (not
    two on 6000: the test took 24 s, now 15 s), its backdoor held to no ASR floor."""
    toy = load_profile("toy")
    small = {"train_size": 1000, "epochs": 1, "test_size": 200, "val_per_class": 5}
    entries = tuple(dataclasses.replace(e, **small, asr_floor=0.0) for e in toy.entries)
    profile = dataclasses.replace(toy, entries=entries)
    toy_zoo = build_profile(profile, ZooStore(tmp_path / "forwards"))
    backwards = dataclasses.replace(profile, entries=tuple(reversed(profile.entries)))
    again = {m.id: m for m in build_profile(backwards, ZooStore(tmp_path / "zoo"))}
    assert [e.id for e in backwards.entries] != [m.id for m in toy_zoo]
    for model in toy_zoo:
        assert _public_bytes(again[model.id]) == _public_bytes(model), model.id


def _make_format_1(root) -> None:
    """Rewrite a built object's bundle the way format 1 did: Keras's own save (with its
    save time) and a compressed clean split, and no stamp."""
    import keras

    public = root / "public"
    model = keras.saving.load_model(public / "model.keras", compile=False)
    model.save(public / "model.keras")
    with np.load(public / "clean_val.npz") as npz:
        x, y = npz["x"], npz["y"]
    np.savez_compressed(public / "clean_val.npz", x=x, y=y)
    (root / "private" / STAMP_FILE).unlink()


def test_an_old_bundle_is_migrated_without_retraining_and_the_build_says_so(toy_zoo, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(toy_zoo[0].root.parent, home / "zoo" / "objects")
    old = home / "zoo" / "objects" / toy_zoo[0].hash
    _make_format_1(old)
    with zipfile.ZipFile(old / "public" / "model.keras") as z:
        assert json.loads(z.read("metadata.json"))["date_saved"] != FIXED_DATE_SAVED
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "zoo", "build", "--profile", "toy"],
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_HOME": str(home), "HARNESS_PROGRESS": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 cached, 1 migrated" in proc.stdout, proc.stdout
    per_model = proc.stderr  # one line per model, beside the progress bar
    assert f"migrated {toy_zoo[0].id}" in per_model, per_model
    assert "built" not in per_model  # nothing retrained
    migrated = ZooStore(home / "zoo").model("toy", toy_zoo[0].id)
    assert _public_bytes(migrated) == _public_bytes(toy_zoo[0])
    # A run migrates what a build has not (e.g. imported models), once.
    _make_format_1(old)
    store = ZooStore(home / "zoo")
    assert store.migrate_stale(store.models("toy")) == 1
    assert store.migrate_stale(store.models("toy")) == 0
    assert _public_bytes(migrated) == _public_bytes(toy_zoo[0])


@pytest.mark.sandbox
def test_a_detector_reading_only_the_inbox_bytes_scores_half(tiny_zoo, backend, tmp_path):
    from harness.api import Track
    from harness.execution.config import RunConfig
    from harness.execution.runner import run_submissions
    from harness.results import ResultsStore
    from harness.scoring.metrics import bootstrap_auc_ci, roc_auc
    from harness.submission.manifest import load_submission
    from harness.zoo.inbox import serving_order

    store = ResultsStore(tmp_path / "results.sqlite")
    spec = load_submission(HOSTILE / "inbox_bytes")
    run_submissions([spec], "tiny", [Track.DETECT, Track.FILTER], store, RunConfig(backend=backend))
    tasks = store.tasks("tiny")
    assert all(r.status == "ok" and r.isolation == "bwrap" for r in tasks), [r.error for r in tasks]
    detect = {r.model_id: r for r in tasks if r.track == "detect"}
    by_arch: dict[str, set[str]] = {}
    for model in tiny_zoo:
        by_arch.setdefault(model.truth().arch, set()).add(
            detect[model.id].outputs["extra"]["fingerprint"]
        )
    # Every byte it read is the same for models of one architecture, clean or backdoored.
    assert all(len(prints) == 1 for prints in by_arch.values()), by_arch
    labels = [int(m.truth().poisoned) for m in tiny_zoo]
    scores = [detect[m.id].outputs["score"] for m in tiny_zoo]
    low, high = bootstrap_auc_ci(labels, scores)
    assert low <= 0.5 <= high, (roc_auc(labels, scores), low, high)
    # Repair and filter tasks hand every model of a data set the same number of inputs.
    assert len({r.outputs["n_scores"] for r in tasks if r.track == "filter"}) == 1
    # The warm worker was served the models in the anonymous order, not the profile's.
    served = sorted(tiny_zoo, key=lambda m: detect[m.id].outputs["extra"]["served"])
    assert [m.id for m in served] == [m.id for m in serving_order("tiny", tiny_zoo)]
