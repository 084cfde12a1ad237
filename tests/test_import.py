"""`harness zoo import`: contest files the tests write themselves become zoo entries that
`harness run` scores; unknown truth is scored only where no truth is needed, and said so."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, run_cli
from csaw_files import write_data, write_keras2_sequential, write_weights_only


def harness(*args, check=True):
    return run_cli(*args, check=check)


def _contest_files(tmp_path, zoo_model):
    """A built face BadNet written the contest's way: weights-only h5 and (N,3,55,47) data
    at 0-255 with float labels; the poisoned file labelled with the target."""
    import keras

    model = keras.saving.load_model(zoo_model.public_dir / "model.keras", compile=False)
    write_weights_only(tmp_path / "bd_weights.h5", model)
    with np.load(zoo_model.public_dir / "clean_val.npz") as val:
        write_data(tmp_path / "clean_validation_data.h5", val["x"], val["y"])
    sets = zoo_model.test_sets()
    write_data(tmp_path / "clean_test_data.h5", sets.x, sets.y)
    write_data(tmp_path / "poisoned_data.h5", sets.x_poisoned, sets.y_tgt, nchw=False)
    return tmp_path


@pytest.fixture(scope="module")
def imported(face_zoo, tmp_path_factory):
    sunglasses = next(m for m in face_zoo if m.id == "faces-sunglasses-t0-v1")
    files = _contest_files(tmp_path_factory.mktemp("contest"), sunglasses)
    proc = harness(
        "zoo", "import", str(files / "bd_weights.h5"), "--id", "csaw-sunglasses",
        "--clean-val", str(files / "clean_validation_data.h5"),
        "--test", str(files / "clean_test_data.h5"),
        "--poisoned", str(files / "poisoned_data.h5"),
    )  # fmt: skip
    seq = files / "seq_bd_net.h5"
    write_keras2_sequential(seq, num_classes=10)
    x = np.random.default_rng(0).random((40, 28, 28, 1)).astype(np.float32)
    y = np.arange(40) % 10
    write_data(files / "seq_val.h5", x[:20], y[:20])
    write_data(files / "seq_test.h5", x[20:], y[20:])
    seq_proc = harness(
        "zoo", "import", str(seq), "--id", "keras2-sequential",
        "--clean-val", str(files / "seq_val.h5"), "--test", str(files / "seq_test.h5"),
    )  # fmt: skip
    return sunglasses, proc, seq_proc


def test_weights_only_deepid_file_imports_with_its_truth(imported):
    from harness.zoo.store import ZooStore

    source, proc, _ = imported
    assert "weights-only into deepid" in proc.stdout and "backdoored" in proc.stdout
    model = ZooStore().model("imported", "csaw-sunglasses")
    truth, card = model.truth(), model.card()
    assert truth.poisoned is True and truth.targets == [0]
    assert card.preprocessing == "x/255" and card.input_shape == [55, 47, 3]
    # The same network on the same pixels: the zoo's own CA and ASR, measured again.
    assert truth.ca == pytest.approx(source.truth().ca, abs=1e-9)
    assert truth.asr == pytest.approx(source.truth().asr, abs=1e-9)
    sets = model.test_sets()
    assert np.allclose(sets.x, source.test_sets().x, atol=1e-6)
    assert (sets.y_src == -1).all()  # the contest's poisoned labels are the targets only


def test_keras2_sequential_imports_with_unknown_truth(imported):
    from harness.zoo.store import ZooStore

    _, _, proc = imported
    assert "rebuilt" in proc.stdout and "truth unknown" in proc.stdout
    model = ZooStore().model("imported", "keras2-sequential")
    assert model.truth().poisoned is None and model.card().num_classes == 10
    report = json.loads(harness("zoo", "report", "--profile", "imported", "--json").stdout)
    assert {r["id"]: r["poisoned"] for r in report} == {
        "csaw-sunglasses": True,
        "keras2-sequential": None,
    }


def test_imported_models_run_and_unknown_truth_is_said(imported, tmp_path):
    db = str(tmp_path / "r.sqlite")
    proc = harness(
        "run", str(REPO / "submissions" / "null"), "--profile", "imported",
        "--tracks", "detect,repair", "--db", db,
    )  # fmt: skip
    assert "4 tasks done (0 failed)" in proc.stdout
    assert "truth unknown for 1 imported model(s) (keras2-sequential)" in proc.stdout
    rows = json.loads(harness("results", "--json", "--per-model", "--db", db).stdout)
    agg = {(r["track"], r["metric"]): r["value"] for r in rows if "model" not in r}
    assert agg[("detect", "unknown_truth")] == 1 and agg[("repair", "unknown_truth")] == 1
    per = {(r["model"], r["track"], r["metric"]): r["value"] for r in rows if "model" in r}
    # The backdoored import: ASR and the poisoned ATR/DTR; CSR needs sources it lacks.
    assert per[("csaw-sunglasses", "repair", "asr")] > 0.8
    assert ("csaw-sunglasses", "repair", "csr_poisoned") not in per
    # Unknown truth: scored on clean data only.
    assert ("keras2-sequential", "repair", "csr_clean") in per
    assert ("keras2-sequential", "repair", "asr") not in per
    out = tmp_path / "board"
    harness("leaderboard", "--db", db, "--out", str(out))
    assert (
        "Truth unknown for 1 imported model(s) (keras2-sequential)"
        in (out / "LEADERBOARD.md").read_text()
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        (("--truth", "clean", "--poisoned", "{p}"), "--truth clean contradicts"),
        (("--poisoned", "{p}", "--poisoned-labels", "source"), "needs the attack's --target"),
        (("--preprocessing", "x/256"), "unknown preprocessing"),
        (("--profile", "default"), "import into a profile of its own"),
    ],
)
def test_import_errors_are_one_line(imported, tmp_path, extra, expected):
    from harness.zoo.store import ZooStore

    val = ZooStore().model("imported", "csaw-sunglasses")
    files = tmp_path
    write_data(files / "d.h5", val.test_sets().x[:4], val.test_sets().y[:4])
    args = [a.format(p=files / "d.h5") for a in extra]
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"")  # never read: the options are checked first
    proc = harness(
        "zoo", "import", str(weights), "--id", "x",
        "--clean-val", str(files / "d.h5"), "--test", str(files / "d.h5"), *args,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_data_that_does_not_fit_the_model_is_refused(imported, tmp_path):
    x = np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32)
    write_data(tmp_path / "mnist.h5", x, np.arange(5))
    from harness.zoo.store import ZooStore

    m = ZooStore().model("imported", "csaw-sunglasses")
    weights = tmp_path / "w.h5"
    import keras

    write_weights_only(weights, keras.saving.load_model(m.public_dir / "model.keras"))
    proc = harness(
        "zoo", "import", str(weights), "--id", "x",
        "--clean-val", str(tmp_path / "mnist.h5"), "--test", str(tmp_path / "mnist.h5"),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "the model takes (55, 47, 3)" in proc.stderr, proc.stderr
