"""The Fine-Pruning reference submission (submissions/fine-pruning) on a tiny-zoo model."""

from __future__ import annotations

import numpy as np
from refsubs import build, by_id, open_public

FAST = {"fine_tune_epochs": 2}


def test_repair_keeps_the_net_its_detect_fine_pruned(tiny_zoo, monkeypatch):
    """One instance serves a model's tracks: repair() after detect() of the same model and
    clean split neither prunes nor fine-tunes again; another model is repaired anew."""
    from harness.toolkit import pruning

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


def test_pruning_on_cached_features_matches_pruning_the_weights(tiny_zoo, monkeypatch):
    """prune() runs only the layers after the pruned conv on its output, computed once; the
    channels it prunes and the weights it leaves are those of zeroing each trial's weights
    and running the whole net (the way it falls back to where the net cannot be cut)."""
    import keras

    from harness.toolkit import pruning

    model, clean = open_public(by_id(tiny_zoo, "mnist-badnets-patch3-t0-v1"))
    runs = []
    for cut in (True, False):
        if not cut:
            monkeypatch.setattr(pruning, "_head", lambda net, conv: None)
        net = keras.models.clone_model(model)
        net.set_weights(model.get_weights())
        conv = pruning.choose_layer(net)
        pruned = pruning.prune(net, conv, np.asarray(clean.x), np.asarray(clean.y), 0.05)
        runs.append((pruned, [w.copy() for w in conv.get_weights()]))
    (fast, fast_w), (slow, slow_w) = runs
    assert fast == slow and len(fast) > 0
    for a, b in zip(fast_w, slow_w, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fine_tuning_is_capped_in_images_seen(tiny_zoo):
    """fine_tune() trains at most ``max_images`` images in all (at least one epoch): the
    contest's 11,547-image clean split gets one epoch, a small split all its epochs."""
    import keras

    from harness.toolkit import pruning

    model, clean = open_public(by_id(tiny_zoo, "mnist-clean-b-s2-v1"))
    x, y = np.asarray(clean.x), np.asarray(clean.y)
    net = keras.models.clone_model(model)
    net.set_weights(model.get_weights())
    kw = {"learning_rate": 1e-4, "batch_size": 64}
    how = pruning.FineTuning(epochs=20, max_images=2 * len(x) + 1, **kw)
    assert pruning.fine_tune(net, x, y, how) == 2
    assert pruning.fine_tune(net, x, y, pruning.FineTuning(epochs=20, max_images=1, **kw)) == 1
    how = pruning.FineTuning(epochs=3, max_images=20_000, **kw)
    assert pruning.fine_tune(net, x[:10], y[:10], how) == 3
    assert pruning.FineTuning(epochs=4, **kw).epochs_on(10**6) == 4  # no cap: every epoch
