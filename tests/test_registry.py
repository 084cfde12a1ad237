"""The one shape of the harness's named tables (harness/registry.py), and every table of
the harness in that shape."""

from __future__ import annotations

import pickle

import pytest

from harness.errors import HarnessError, SpecError
from harness.registry import Registry, UnknownName, suggest


def test_a_registry_keeps_order_refuses_twins_and_says_what_was_meant():
    reg: Registry[int] = Registry("metric", [("auc", 1), ("der", 2)])
    reg.register("asr", 3)
    assert list(reg) == ["auc", "der", "asr"] and reg["der"] == 2 and len(reg) == 3
    assert "auc" in reg and "acu" not in reg and reg.get("acu") is None
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("auc", 4)
    with pytest.raises(UnknownName) as caught:
        reg["acu"]
    err = caught.value
    assert isinstance(err, SpecError) and isinstance(err, KeyError)
    assert err.line() == "unknown metric 'acu' (fix: did you mean 'auc'?)" == str(err)
    again = pickle.loads(pickle.dumps(err))  # crosses from a Dask worker whole
    assert isinstance(again, UnknownName) and again.line() == err.line()
    assert suggest("zzz", reg) == "choose from: auc, der, asr"


def test_a_decorator_registers_under_the_name_it_is_given():
    reg: Registry[object] = Registry("figure")
    add = reg.decorator(lambda fn: fn.__name__.replace("_", "-"))

    @add
    def ca_drop() -> None: ...

    assert reg["ca-drop"] is ca_drop


def test_every_named_table_is_a_registry_with_one_line_misses():
    from harness.attack_track.recipe import TRAIN_RECIPES
    from harness.attacks.registry import RECIPES
    from harness.conformance import CHECKS
    from harness.reproduce.base import FIGURES
    from harness.scoring.metrics import METRICS
    from harness.tracks import by_name
    from harness.zoo.architectures import ARCHITECTURES

    tables = [TRAIN_RECIPES, RECIPES, CHECKS, FIGURES, METRICS, ARCHITECTURES]
    assert all(isinstance(t, Registry) and len(t) for t in tables)
    for table in tables:
        name = next(iter(table))
        with pytest.raises(HarnessError, match=f"did you mean {name!r}"):
            table[name + "x"]
    with pytest.raises(KeyError, match="unknown track kind 'detekt'"):
        by_name("detekt")
