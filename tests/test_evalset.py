"""The inputs of a repair or filter task: same count for every model of a data set, no
clean image next to its own stamped copy, answers mapped back to the right rows. (How the
drawn rows are renewed before a submission sees them: tests/test_provenance.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from harness.zoo.evalset import draw_eval_set, draw_rows, second_part_size
from harness.zoo.inbox import anonymous_id, serving_order
from harness.zoo.runkey import RunKey
from harness.zoo.store import TestSets as Sets
from harness.zoo.store import ZooModel

N = 200


def _images(n: int) -> np.ndarray:
    """Image i holds the value i everywhere, so a row can be traced to its source."""
    return np.repeat(np.arange(n, dtype=np.float32), 4).reshape(n, 2, 2, 1)


def _sets(triggers: int, attacked=lambda y: y != 0) -> Sets:
    x, y = _images(N), np.arange(N) % 10
    if triggers == 0:
        empty = np.zeros(0, np.int64)
        return Sets(x, y, np.zeros((0, 2, 2, 1), np.float32), empty, empty, empty)
    src = np.concatenate([np.flatnonzero(attacked(y))] * triggers)
    stamped = (
        x[src]
        + 1000.0 * (1 + np.repeat(np.arange(triggers), len(src) // triggers))[:, None, None, None]
    )
    return Sets(x, y, stamped, y[src], np.zeros(len(src), np.int64), src)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_model_gets_the_same_number_of_inputs(seed):
    sizes = {
        len(draw_eval_set(_sets(0), seed).x),
        len(draw_eval_set(_sets(1), seed).x),
        len(draw_eval_set(_sets(3), seed).x),
        len(draw_eval_set(_sets(1, attacked=lambda y: y >= 0), seed).x),  # all-to-all
    }
    assert sizes == {N // 2 + second_part_size(N)}


@pytest.mark.parametrize("triggers", [1, 3])
def test_no_source_image_appears_twice(triggers):
    sets = _sets(triggers)
    evs = draw_rows(sets, seed=3)
    sources = evs.x[:, 0, 0, 0] % 1000.0
    assert len(np.unique(sources)) == len(sources)
    assert len(evs.poisoned_rows) == second_part_size(N)
    assert not set(evs.clean_rows) & set(sets.src_index[evs.poisoned_rows])


def test_a_model_without_a_trigger_gets_clean_filler_that_is_not_scored():
    sets = _sets(0)
    evs = draw_rows(sets, seed=3)
    assert len(evs.poisoned_rows) == 0
    assert len(np.unique(evs.x[:, 0, 0, 0])) == len(evs.x)  # distinct clean images
    scored = evs.scored(sets)
    assert len(scored.y) == N // 2 and len(scored.y_src) == 0


def test_answers_map_back_to_their_rows():
    sets = _sets(1)
    evs = draw_rows(sets, seed=5)
    answers = evs.x[:, 0, 0, 0]  # an "answer" that is the input's own value
    clean, poisoned = evs.split(answers)
    np.testing.assert_array_equal(clean, sets.x[evs.clean_rows][:, 0, 0, 0])
    np.testing.assert_array_equal(poisoned, sets.x_poisoned[evs.poisoned_rows][:, 0, 0, 0])
    assert not np.array_equal(evs.x[:, 0, 0, 0], np.sort(evs.x[:, 0, 0, 0]))  # shuffled


def test_the_draw_is_seeded():
    a, b = draw_eval_set(_sets(1), 11), draw_eval_set(_sets(1), 11)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, draw_eval_set(_sets(1), 12).x)


def test_models_are_served_in_an_order_fixed_by_the_run_alone(tmp_path):
    models = [ZooModel(f"m{i}", f"h{i}", tmp_path) for i in range(12)]
    key = RunKey(b"k" * 32)
    order = serving_order("run-a", models, key)
    assert serving_order("run-a", list(reversed(models)), key) == order
    assert [m.id for m in order] != [m.id for m in models]
    assert [m.id for m in serving_order("run-b", models, key)] != [m.id for m in order]
    ids = [anonymous_id("run-a", m.id, key) for m in order]
    assert ids == sorted(ids)
