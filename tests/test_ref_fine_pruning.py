"""The Fine-Pruning reference submission (submissions/fine-pruning) on a tiny-zoo model."""

from __future__ import annotations

import numpy as np
from refsubs import build, by_id, open_public

FAST = {"fine_tune_epochs": 2}


def test_repair_keeps_the_net_its_detect_fine_pruned(tiny_zoo, monkeypatch):
    """One instance serves a model's tracks: repair() after detect() of the same model and
    clean split neither prunes nor fine-tunes again; another model is repaired anew."""
    from harness import pruning

    calls: list[str] = []
    prune, fine_tune = pruning.prune, pruning.fine_tune
    monkeypatch.setattr(pruning, "prune", lambda *a, **k: calls.append("prune") or prune(*a, **k))
    monkeypatch.setattr(
        pruning, "fine_tune", lambda *a, **k: calls.append("tune") or fine_tune(*a, **k)
    )
    model, clean = open_public(by_id(tiny_zoo, "mnist-badnets-patch3-t0-v1"))
    fp = build("fine-pruning", **FAST)
    fp.detect(model, clean)
    good = fp.good
    fp.repair(model, clean)
    assert calls == ["prune", "tune"] and fp.good is good
    x = np.asarray(clean.x[:8])
    assert fp.predict(x).shape == (8,)
    other, other_clean = open_public(by_id(tiny_zoo, "mnist-clean-b-s2-v1"))
    fp.repair(other, other_clean)
    assert calls == ["prune", "tune"] * 2 and fp.good is not good
