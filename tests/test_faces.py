"""The face track: SynthFaces, the face triggers, the DeepID network and the face zoo."""

from __future__ import annotations

import numpy as np
import pytest

from harness.attacks import design
from harness.data.synthfaces import CANON, FaceSpec, generate, load_synthfaces, parse_name
from harness.errors import SpecError

SMALL = FaceSpec(identities=6, seed=5, train_per_id=4, test_per_id=2)


# -- SynthFaces -----------------------------------------------------------------------------
def test_synthfaces_is_deterministic_and_shaped_like_the_contest():
    a, b = generate(SMALL), generate(SMALL)
    assert a.x_train.shape == (24, 55, 47, 3) and a.x_test.shape == (12, 55, 47, 3)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    assert np.bincount(a.y_train).tolist() == [4] * 6
    assert a.num_classes == 6 and a.preprocessing == "x/255"
    other = generate(FaceSpec(identities=6, seed=6, train_per_id=4, test_per_id=2))
    assert not np.array_equal(a.x_train, other.x_train)


def test_every_image_differs():
    data = generate(FaceSpec(identities=20, seed=1, train_per_id=10, test_per_id=1))
    x = data.x_train.reshape(len(data.x_train), -1)
    same = [
        np.abs(x[data.y_train == k][0] - x[data.y_train == k][1:]).mean(1).min() for k in range(20)
    ]
    assert min(same) > 0.01  # pose, light, expression, background and noise change every image


def test_synthfaces_is_cached_on_first_use(harness_home):
    from harness.data.synthfaces import cache_path

    spec = FaceSpec(identities=3, seed=9, train_per_id=2, test_per_id=1)
    assert not cache_path(spec).exists()
    first = load_synthfaces(spec)
    assert cache_path(spec).exists()
    again = load_synthfaces(spec)
    assert np.array_equal(first.x_train, again.x_train)


def test_dataset_names():
    assert parse_name("synthfaces") == FaceSpec()
    assert parse_name("synthfaces-1283").identities == 1283
    assert parse_name("mnist") is None
    with pytest.raises(SpecError, match="2..1283"):
        parse_name("synthfaces-2000")


def test_every_contest_identity_count_can_be_drawn():
    from harness.data.synthfaces import _identities

    ids = _identities(1283, np.random.default_rng(0))
    keys = np.column_stack([ids["skin"][:, 0], ids["hair"][:, 0], ids["style"], ids["iris"][:, 0]])
    assert len(ids["style"]) == 1283 and len(np.unique(keys, axis=0)) > 600


# -- triggers -------------------------------------------------------------------------------
def _at(mask, name):
    x, y = CANON[name]
    return mask[int(round(y)), int(round(x))]


def test_accessories_sit_on_their_landmarks():
    (glasses,) = design("sunglasses", {}, (55, 47, 3), 100, 0).triggers
    (lips,) = design("lipstick", {"colour": [0.9, 0.0, 0.1]}, (55, 47, 3), 100, 0).triggers
    assert _at(glasses.mask, "left_eye") == 1 and _at(glasses.mask, "right_eye") == 1
    assert _at(glasses.mask, "mouth") == 0
    assert _at(lips.mask, "mouth") == pytest.approx(0.85) and _at(lips.mask, "left_eye") == 0
    assert np.allclose(lips.pattern[40, 23], [0.9, 0.0, 0.1])
    assert glasses.target_of.tolist() == [0] * 100
    multi = design("face_multi_trigger_multi_target", {"targets": [5, 8, 13]}, (55, 47, 3), 100, 0)
    brows, _, _ = multi.triggers
    assert _at(brows.mask, "left_brow") == 1 and _at(brows.mask, "left_eye") == 0
    assert multi.targets == [5, 8, 13]
    bigger = design("sunglasses", {"size": 1.3}, (55, 47, 3), 100, 0).triggers[0]
    assert bigger.size > glasses.size


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"colour": [2, 0, 0]}, "colour"),
        ({"size": 3.0}, "size"),
        ({"triggers": ["sunglasses", "sunglasses", "lipstick"]}, "differ"),
        ({"triggers": ["hat", "lipstick", "sunglasses"]}, "accessory"),
    ],
)
def test_bad_face_trigger_params_are_spec_errors(params, message):
    name = "face_multi_trigger_single_target" if "triggers" in params else "sunglasses"
    with pytest.raises(SpecError, match=message):
        design(name, params, (55, 47, 3), 100, 0)


def test_face_triggers_refuse_mnist():
    with pytest.raises(SpecError, match="55x47x3"):
        design("lipstick", {}, (28, 28, 1), 10, 0)


# -- DeepID ---------------------------------------------------------------------------------
@pytest.mark.integration  # builds the Keras network
def test_deepid_has_the_contest_layers_and_size():
    from harness.zoo.architectures import build_architecture

    net = build_architecture("deepid", (55, 47, 3), 1283)
    names = [layer.name for layer in net.layers]
    for name in ("conv_1", "pool_1", "conv_2", "pool_2", "conv_3", "pool_3", "conv_4",
                 "fc_1", "fc_2", "add_1", "activation_1", "output"):  # fmt: skip
        assert name in names
    assert net.count_params() == 601_643  # the contest's DeepID, 1283 classes
    assert net.get_layer("conv_1").kernel.shape == (4, 4, 3, 20)
    assert net.get_layer("conv_4").kernel.shape == (2, 2, 60, 80)
    assert net.output_shape == (None, 1283)


# -- the face zoo ---------------------------------------------------------------------------
def test_face_models_learn_faces_and_their_backdoors(face_zoo):
    for model in face_zoo:
        truth, card = model.truth(), model.card()
        assert card.dataset == "synthfaces-10" and card.input_shape == [55, 47, 3]
        assert card.preprocessing == "x/255" and truth.arch == "deepid"
        assert truth.ca >= 0.9, (model.id, truth.ca)
        if truth.poisoned:
            assert truth.asr >= truth.asr_floor, (model.id, truth.asr)
    multi = next(m for m in face_zoo if "multi" in m.id).truth()
    assert multi.targets == [1, 2, 3] and multi.trigger_sizes[0] > 0


def test_zoo_pictures_draws_the_face_triggers_and_a_face_grid(tmp_path, face_zoo):
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "zoo",
            "pictures",
            "--profile",
            "tiny-faces",
            "--out",
            str(tmp_path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_PROGRESS": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "synthfaces.png",
        "trigger-face_multi_trigger_multi_target.png",
        "trigger-sunglasses.png",
    ]
