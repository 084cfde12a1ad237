"""SIG (Barni, Kallas and Tondi, "A New Backdoor Attack in CNNs by Training Set Corruption
without Label Poisoning", ICIP 2019): a faint signal added to a share of the target
class's training images, labels unchanged (clean-label, ``harness.attacks.clean_label``).

The signal is a horizontal sinusoid ``delta * sin(2 pi j f / W)`` over the whole image
(``signal = "sine"``) or a ramp ``delta * j / W`` (``"ramp"``), added and clipped to the
input range (an additive trigger, ``harness.attacks.kinds``). As in the paper, the signal
the model is tested with is stronger than the one it was trained on (``delta_test`` >
``delta_train``): the model learns the signal as a feature of the target class, and a
stronger copy of it outweighs the features of another digit.
"""

from __future__ import annotations

import numpy as np

from harness.attacks.base import AttackContext, Backdoor, single_target_map
from harness.attacks.clean_label import CleanLabelPlan, clean_label_backdoor
from harness.attacks.kinds import AdditiveTrigger

SIGNALS = ("sine", "ramp")


def signal_pattern(shape: tuple[int, ...], signal: str, delta: float, frequency: int) -> np.ndarray:
    """The signal as an (H, W, C) array: constant down each column."""
    h, w, c = shape
    cols = np.arange(w, dtype=np.float32)
    if signal == "sine":
        row = delta * np.sin(2 * np.pi * cols * frequency / w)
    elif signal == "ramp":
        row = delta * cols / w
    else:
        raise ValueError(f"signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
    return np.broadcast_to(row[None, :, None], (h, w, c)).astype(np.float32).copy()


def sig(
    ctx: AttackContext,
    *,
    target: int = 0,
    share: float = 0.8,
    signal: str = "sine",
    delta_train: float = 0.3,
    delta_test: float = 0.6,
    frequency: int = 6,
    clean_counterpart: bool = False,
) -> Backdoor:
    """``share`` of the target class's training images carry the signal at ``delta_train``
    (a share of the input range); test images get it at ``delta_test``. The defaults are
    the harness's MNIST settings, measured over seeds (docs/ZOO.md): the paper's GTSRB
    sinusoid (delta 20/255, f = 6) is too faint for a small MNIST net trained 4 epochs."""
    if not 0.0 < delta_train <= delta_test <= 1.0:
        raise ValueError("need 0 < delta_train <= delta_test <= 1")
    h, w, _ = ctx.input_shape
    target_of = single_target_map(ctx.num_classes, target)
    ones = np.ones((h, w), np.float32)

    def trigger(delta: float) -> AdditiveTrigger:
        return AdditiveTrigger(
            ones, signal_pattern(ctx.input_shape, signal, delta, frequency), target_of
        )

    plan = CleanLabelPlan(target, share, (trigger(delta_train),))
    return clean_label_backdoor(
        "sig", (trigger(delta_test),), plan, asr_floor=0.8, counterpart=clean_counterpart
    )
