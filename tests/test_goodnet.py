"""`harness export goodnet`: a repaired model as one Keras file the contest's grader loads
with plain `load_model`, answering N for rejected inputs; broken exports are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import HOSTILE, REPO, run_cli

PLAIN_GRADER = r"""
import json, sys
import numpy as np
import keras
model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
print(json.dumps(np.argmax(model.predict(x, verbose=0), axis=1).tolist()))
"""


harness = run_cli


def test_agreement_goodnet_answers_the_shared_label_else_n(tiny_zoo):
    import keras

    from harness.toolkit.goodnet import agreement_goodnet

    a, b = (keras.saving.load_model(m.public_dir / "model.keras") for m in tiny_zoo[:2])
    x = tiny_zoo[0].test_sets().x[:300]
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    la, lb = pa.argmax(1), pb.argmax(1)
    expected = np.where(la == lb, la, pa.shape[1])
    goodnet = agreement_goodnet(a, b)
    got = goodnet.predict(x, verbose=0).argmax(1)
    assert goodnet.output_shape == (None, pa.shape[1] + 1)
    assert (la != lb).any() and (la == lb).any()  # both branches are exercised
    gap = np.minimum(*(np.diff(np.sort(p, axis=1)[:, -2:], axis=1)[:, 0] for p in (pa, pb)))
    clear = gap > 1e-2  # near-ties are rejected by design
    assert np.array_equal(got[clear], expected[clear])
    assert np.mean(got == expected) > 0.98


def test_fine_pruning_goodnet_loads_in_a_plain_grader(face_zoo, tmp_path):
    out = tmp_path / "goodnet.h5"
    proc = harness(
        "export", "goodnet", str(REPO / "submissions" / "fine-pruning"),
        "--profile", "tiny-faces", "--model", "faces-sunglasses-t0-v1", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "11 outputs (N = 10 = rejected)" in proc.stdout
    model = next(m for m in face_zoo if m.id == "faces-sunglasses-t0-v1")
    sets = model.test_sets()
    np.save(tmp_path / "x.npy", np.concatenate([sets.x, sets.x_poisoned]))
    grader = subprocess.run(
        [sys.executable, "-I", "-c", PLAIN_GRADER, str(out), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert grader.returncode == 0, grader.stderr
    preds = np.array(json.loads(grader.stdout.strip().splitlines()[-1]))
    clean, poisoned = preds[: len(sets.y)], preds[len(sets.y) :]
    ca = np.mean(clean == sets.y)
    assert f"CA {ca:.3f}" in proc.stdout  # the harness reports what the grader measures
    # The GoodNet rejects (answers N) where the fine-tuned net disagrees with the original,
    # on a 120-image test set: its CA was 0.575 with the face models trained on one thread
    # per process, above 0.6 on two; chance is 0.1.
    assert ca > 0.4 and set(np.unique(preds)) <= set(range(11))
    # The GoodNet turns the backdoor's answers into rejections (label N = 10).
    assert np.mean(poisoned == sets.y_tgt) < model.truth().asr
    assert np.mean(poisoned == 10) > 0.2
    agree = float(proc.stdout.split("repair track on ")[1].split("%")[0])
    assert agree > 98.0


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("n_plus_one", "it answers N+1 = 11 for"),
        ("lambda", "plain keras.models.load_model cannot use the exported model"),
    ],
)
def test_unusable_goodnets_are_refused_with_the_fix(face_zoo, tmp_path, mode, expected):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "submission.py").write_text((HOSTILE / "bad_goodnet" / "submission.py").read_text())
    toml = (HOSTILE / "bad_goodnet" / "submission.toml").read_text()
    (sub / "submission.toml").write_text(toml.replace('"n_plus_one"', f'"{mode}"'))
    out = tmp_path / "goodnet.h5"
    # In this process: the command adds only the one-line print of the error, which
    # test_export_needs_a_repairer checks.
    from harness.errors import HarnessError
    from harness.execution.goodnet import export_goodnet

    model = next(m for m in face_zoo if m.id == "faces-clean-s41-v1")
    with pytest.raises(HarnessError) as err:
        export_goodnet(sub, model, out, backend="bwrap")
    assert expected in str(err.value) and err.value.fix, err.value
    assert not out.exists()


def test_export_needs_a_repairer(face_zoo, tmp_path):
    proc = harness(
        "export", "goodnet", str(HOSTILE / "nan_score"), "--profile", "tiny-faces",
        "--model", "faces-clean-s41-v1", "--out", str(tmp_path / "g.h5"),
    )  # fmt: skip
    assert proc.returncode == 2 and "does not take the repair track" in proc.stderr
