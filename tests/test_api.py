import subprocess
import sys

import numpy as np
import pytest

from harness.api import CleanData, Track, Trigger


def test_api_imports_without_tensorflow():
    code = "import sys, harness.api; assert 'tensorflow' not in sys.modules, 'tf imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clean_data_is_read_only():
    clean = CleanData(np.zeros((2, 3, 3, 1), np.float32), np.array([0, 1]), num_classes=2)
    with pytest.raises(ValueError):
        clean.x[0, 0, 0, 0] = 1.0
    assert clean.input_shape == (3, 3, 1)


def test_trigger_stamp_formula():
    mask = np.zeros((2, 2))
    mask[1, 1] = 1.0
    trig = Trigger(mask, np.full((2, 2, 1), 0.9))
    out = trig.stamp(np.zeros((1, 2, 2, 1)))
    assert out[0, 1, 1, 0] == pytest.approx(0.9) and out.sum() == pytest.approx(0.9)


def test_track_parse_says_what_is_allowed():
    assert Track.parse(" Repair ") is Track.REPAIR
    with pytest.raises(ValueError, match="choose from"):
        Track.parse("detct")


def test_input_memo_computes_a_batch_once_and_keeps_at_most_its_limit():
    from harness.api import InputMemo

    calls = []

    def compute(x):
        calls.append(len(x))
        return x.sum(axis=1)

    memo = InputMemo(limit=1)
    a, b = np.ones((3, 2), np.float32), np.zeros((4, 2), np.float32)
    np.testing.assert_array_equal(memo(a, compute), [2, 2, 2])
    np.testing.assert_array_equal(memo(a.copy(), compute), [2, 2, 2])  # same bytes: kept
    assert calls == [3]
    memo(b, compute)
    memo(b, compute)  # over the limit: computed each time, never kept
    assert calls == [3, 4, 4]
    memo(a.astype(np.float64), compute)  # another dtype is another batch
    assert calls == [3, 4, 4, 3]
