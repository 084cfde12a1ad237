"""The passive checks on a worker's raw outputs, on fabricated replies and .npy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.submission.validate import OutputError
from harness.tracks.detect import detect_output
from harness.tracks.filter import input_scores
from harness.tracks.fuzz import generated_inputs
from harness.tracks.repair import label_predictions

SHAPE = (4, 5, 1)


def save(folder: Path, name: str, arr) -> str:
    np.save(folder / name, arr, allow_pickle=True)
    return name


# -- detect ---------------------------------------------------------------------------------
def test_a_plain_detection_passes_and_labels_become_ints(tmp_path):
    out = detect_output({"type": "Detection", "score": 0.75}, tmp_path, SHAPE, 10)
    assert out.score == 0.75 and out.target_labels is None and out.mask is None
    out = detect_output(
        {"type": "Detection", "score": 1.0, "target_labels": [3.0, 0.0]},
        tmp_path,
        SHAPE,
        10,
    )
    assert out.target_labels == [3, 0] and all(type(v) is int for v in out.target_labels)


@pytest.mark.parametrize(
    "reply, says",
    [
        ({"type": "dict", "score": 0.5}, "returned dict, not harness.api.Detection"),
        ({"type": "Detection"}, "score is None"),
        ({"type": "Detection", "score": 1}, "score is 1;"),  # an int: not a probability
        ({"type": "Detection", "score": 1.5}, "in \\[0, 1\\]"),
        ({"type": "Detection", "score": -0.1}, "in \\[0, 1\\]"),
        ({"type": "Detection", "score": float("nan")}, "score is nan"),
        ({"type": "Detection", "score": 0.5, "target_labels": [10.0]}, "0..9"),
        ({"type": "Detection", "score": 0.5, "target_labels": [-1.0]}, "0..9"),
        ({"type": "Detection", "score": 0.5, "target_labels": [2.5]}, "not class indices"),
        ({"type": "Detection", "score": 0.5, "target_labels": ["3"]}, "not class indices"),
    ],
)
def test_bad_detections_are_refused_with_the_reason(tmp_path, reply, says):
    with pytest.raises(OutputError, match=says):
        detect_output(reply, tmp_path, SHAPE, 10)


def trigger_reply(tmp_path: Path, mask, pattern) -> dict:
    return {
        "type": "Detection",
        "score": 0.9,
        "trigger": {
            "mask": save(tmp_path, "m.npy", mask),
            "pattern": save(tmp_path, "p.npy", pattern),
        },
    }


def test_a_trigger_is_loaded_at_the_input_shape(tmp_path):
    mask = np.zeros((4, 5), np.float32)
    mask[0, 0] = 1.0
    out = detect_output(trigger_reply(tmp_path, mask, np.ones(SHAPE)), tmp_path, SHAPE, 10)
    assert out.mask.dtype == np.float64 and out.mask.shape == (4, 5) and out.mask[0, 0] == 1.0
    assert out.pattern.shape == SHAPE


@pytest.mark.parametrize(
    "mask, pattern, says",
    [
        (np.zeros((5, 4)), np.zeros(SHAPE), "must be \\(4, 5\\) / \\(4, 5, 1\\)"),
        (np.zeros((4, 5)), np.zeros((4, 5, 3)), "must be"),
        (np.full((4, 5), np.nan), np.zeros(SHAPE), "NaN or inf"),
        (np.zeros((4, 5)), np.full(SHAPE, np.inf), "NaN or inf"),
        (np.full((4, 5), 1.5), np.zeros(SHAPE), "mask values must lie in \\[0, 1\\]"),
        (np.full((4, 5), -0.5), np.zeros(SHAPE), "mask values must lie in \\[0, 1\\]"),
        (np.array([{"a": 1}], dtype=object), np.zeros(SHAPE), "not a plain numeric array"),
    ],
)
def test_bad_triggers_are_refused(tmp_path, mask, pattern, says):
    with pytest.raises(OutputError, match=says):
        detect_output(trigger_reply(tmp_path, mask, pattern), tmp_path, SHAPE, 10)


def test_a_trigger_pattern_outside_the_input_range_is_refused(tmp_path):
    mask = np.full((4, 5), 0.5)
    in_range = trigger_reply(tmp_path, mask, np.full(SHAPE, 1.0 + 1e-5))  # float rounding
    assert detect_output(in_range, tmp_path, SHAPE, 10, (0.0, 1.0)).pattern.max() > 1.0
    for bad in (255.0, -0.5):
        reply = trigger_reply(tmp_path, mask, np.full(SHAPE, bad))
        with pytest.raises(OutputError, match="leave the model's input range \\[0, 1\\]"):
            detect_output(reply, tmp_path, SHAPE, 10, (0.0, 1.0))
        assert detect_output(reply, tmp_path, SHAPE, 10, (-1.0, 255.0)).pattern.size


def test_missing_or_linked_output_files_are_refused(tmp_path):
    with pytest.raises(OutputError, match="trigger mask: .*/no.npy is missing"):
        detect_output(
            {"type": "Detection", "score": 0.5, "trigger": {"mask": "no.npy", "pattern": "no.npy"}},
            tmp_path,
            SHAPE,
            10,
        )
    real = tmp_path / "real.npy"
    np.save(real, np.zeros(3, np.int64))
    (tmp_path / "link.npy").symlink_to(real)  # e.g. a link to a file outside the scratch dir
    with pytest.raises(OutputError, match="predictions: link.npy is a symbolic link: links are"):
        label_predictions(tmp_path / "link.npy", 3, 10)


# -- repair ---------------------------------------------------------------------------------
def test_predictions_accept_integer_labels_and_n_for_rejected(tmp_path):
    got = label_predictions(
        tmp_path / save(tmp_path, "a.npy", np.array([0, 9, 10], np.uint8)), 3, 10
    )
    assert got.dtype == np.int64 and got.tolist() == [0, 9, 10]
    whole = np.array([1.0, 2.0, 10.0], np.float32)  # integral floats are fine
    assert label_predictions(tmp_path / save(tmp_path, "b.npy", whole), 3, 10).tolist() == [
        1,
        2,
        10,
    ]
    assert label_predictions(tmp_path / save(tmp_path, "c.npy", np.zeros(0, int)), 0, 10).size == 0


@pytest.mark.parametrize(
    "preds, says",
    [
        (np.zeros((3, 1), int), "shape \\(3, 1\\); expected \\(3,\\)"),
        (np.zeros(4, int), "expected \\(3,\\)"),
        (np.array([0.5, 1.0, 2.0]), "non-integer labels"),
        (np.array([np.nan, 1.0, 2.0]), "non-integer labels"),
        (np.array([True, False, True]), "dtype bool"),
        (np.array([0, 11, 1]), "\\(N\\+1\\).*N = 10 for rejected.*subtract one"),
        (np.array([0, 12, 1]), "outside 0..10"),
        (np.array([0, -1, 1]), "outside 0..10"),
    ],
)
def test_bad_predictions_are_refused_with_the_fix(tmp_path, preds, says):
    with pytest.raises(OutputError, match=says):
        label_predictions(tmp_path / save(tmp_path, "p.npy", preds), 3, 10)


# -- filter ---------------------------------------------------------------------------------
def test_filter_scores_are_finite_floats_one_per_input(tmp_path):
    got = input_scores(tmp_path / save(tmp_path, "s.npy", np.array([0, 1, 2], np.int32)), 3)
    assert got.dtype == np.float64 and got.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(OutputError, match="shape \\(2,\\); expected \\(3,\\)"):
        input_scores(tmp_path / save(tmp_path, "t.npy", np.zeros(2)), 3)
    with pytest.raises(OutputError, match="NaN or inf"):
        input_scores(tmp_path / save(tmp_path, "u.npy", np.array([0.1, np.inf, 0.2])), 3)


# -- fuzz -----------------------------------------------------------------------------------
def fuzz(tmp_path: Path, x, idx, budget: int = 5, n_seeds: int = 3):
    reply = {"x": save(tmp_path, "x.npy", x), "seed_index": save(tmp_path, "i.npy", idx)}
    return generated_inputs(reply, tmp_path, SHAPE, (0.0, 1.0), budget, n_seeds)


def test_generated_inputs_are_clipped_within_tolerance_and_indices_become_ints(tmp_path):
    x = np.full((2, *SHAPE), 0.5, np.float64)
    x[0, 0, 0, 0] = 1.00005  # float noise just outside the range is clipped, not refused
    got_x, got_idx = fuzz(tmp_path, x, np.array([2.0, 0.0]))
    assert got_x.dtype == np.float32 and got_x.max() == 1.0
    assert got_idx.dtype == np.int64 and got_idx.tolist() == [2, 0]
    empty_x, empty_idx = fuzz(tmp_path, np.zeros((0, *SHAPE)), np.zeros(0, int))
    assert empty_x.shape == (0, *SHAPE) and empty_idx.shape == (0,)


@pytest.mark.parametrize(
    "x, idx, says",
    [
        (np.zeros((2, 4, 5)), np.zeros(2, int), "expected \\(n, 4, 5, 1\\)"),
        (np.zeros((6, *SHAPE)), np.zeros(6, int), "6 inputs; the budget is 5"),
        (np.zeros((2, *SHAPE)), np.zeros(3, int), "one per input"),
        (np.full((2, *SHAPE), np.nan), np.zeros(2, int), "finite numbers"),
        (
            np.full((2, *SHAPE), 1.01),
            np.zeros(2, int),
            "leave the input range \\[0.0, 1.0\\]; clip",
        ),
        (np.full((2, *SHAPE), -0.01), np.zeros(2, int), "leave the input range"),
        (np.zeros((2, *SHAPE)), np.array([0.5, 1.0]), "integer indices"),
        (np.zeros((2, *SHAPE)), np.array(["a", "b"]), "dtype <U1; save real numbers"),
        (np.zeros((2, *SHAPE)), np.array([0, 3]), "0..2 \\(indices into clean.x\\)"),
        (np.zeros((2, *SHAPE)), np.array([-1, 0]), "0..2"),
    ],
)
def test_bad_generated_inputs_are_refused(tmp_path, x, idx, says):
    with pytest.raises(OutputError, match=says):
        fuzz(tmp_path, x, idx)


# -- replies from a hostile worker: any JSON, any file ---------------------------------------
@pytest.mark.parametrize(
    "reply, says",
    [
        ({"type": "Detection", "score": 0.5, "target_labels": "0"}, "list of labels"),
        ({"type": "Detection", "score": 0.5, "target_labels": [float("nan")]}, "not class"),
        ({"type": "Detection", "score": 0.5, "target_labels": [float("inf")]}, "not class"),
        ({"type": "Detection", "score": 0.5, "trigger": "mask.npy"}, "not an object"),
        ({"type": "Detection", "score": 0.5, "trigger": {"mask": 3}}, "not a file name"),
        (
            {"type": "Detection", "score": 0.5, "trigger": {"mask": "../../etc/x.npy"}},
            "not a file name",
        ),
        ({"type": "Detection", "score": 0.5, "trigger": {"mask": ".hidden"}}, "not a file name"),
    ],
)
def test_malformed_detect_replies_are_output_errors(tmp_path, reply, says):
    with pytest.raises(OutputError, match=says):
        detect_output(reply, tmp_path, SHAPE, 10)


def test_an_archive_or_a_record_array_is_not_an_output(tmp_path):
    np.savez(tmp_path / "p.npz", a=np.zeros(3))
    (tmp_path / "p.npz").rename(tmp_path / "predictions.npy")
    with pytest.raises(OutputError, match="npz archive"):
        label_predictions(tmp_path / "predictions.npy", 3, 10)
    np.save(tmp_path / "rec.npy", np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))
    with pytest.raises(OutputError, match="save real numbers"):
        input_scores(tmp_path / "rec.npy", 3)


def test_a_reply_that_is_not_an_object_is_an_output_error(tmp_path):
    from harness.submission.validate import reply_file, reply_object

    with pytest.raises(OutputError, match="not an object"):
        reply_object(["predictions.npy"], "result")
    with pytest.raises(OutputError, match="not a file name"):
        reply_file({"predictions": None}, "predictions", tmp_path)
    assert reply_file({"x": "generated_x.npy"}, "x", tmp_path).path == tmp_path / "generated_x.npy"
