"""The decision GoodNet of the CSAW-HackML 2020 course project report (Liao Hu, "Final
Project Report", EL-GY-9163 Machine Learning for Cyber Security, NYU; "the report").

1. Repair: fine-prune a copy of the BadNet (Liu, Dolan-Gavitt, Garg, RAID 2018): zero one
   convolutional layer's channels in increasing order of their mean clean activation until
   clean-split accuracy has dropped by ``max_accuracy_drop`` (the channel that crossed the
   line is restored), then fine-tune on the clean split with the pruned channels held at
   zero (``fine_tune_epochs``, at most ``fine_tune_images`` images seen in all: one epoch
   of a contest-size split). The layer is the last convolution that every path to the
   output passes through: the last conv on the MNIST nets, conv_3 on the DeepID face net
   (conv_4 is one branch only; pool_3 also feeds fc_1), as in the CSAW lab.
2. Decide (the report's section 3.3): where the BadNet and the repaired net agree, answer that
   label. Where they disagree, each net's top softmax probability falls in one of three
   bins, confident (>= ``thres_conf``), middle, or uncertain (< ``thres_detect``), and
   the 3 x 3 ``table`` says what to answer: the original (BadNet) label, the repaired label,
   or N = the number of classes ("backdoored input, rejected").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.api import CleanData
from harness.toolkit import pruning

#: Letters of the decision table: answer the BadNet's label, the repaired net's, or N.
ORIGINAL, REPAIRED, REJECT = "O", "R", "N"

#: The report's table, reconstructed (it gives its thresholds, its nine cases and one
#: of them: BadNet at 99.9 % with the repaired net at 70 % is backdoored). Rows: BadNet
#: confident / middle / uncertain; columns: repaired net confident / middle / uncertain.
DEFAULT_TABLE = "RNN/RRO/RRN"


def parse_table(table: str) -> np.ndarray:
    """The 3 x 3 array of answer letters of a table string like ``"RNN/RRO/RRN"``."""
    rows = table.upper().split("/")
    if len(rows) != 3 or any(len(r) != 3 or set(r) - {ORIGINAL, REPAIRED, REJECT} for r in rows):
        raise ValueError(
            f"table must be three '/'-separated rows of three letters O, R or N "
            f"(e.g. {DEFAULT_TABLE!r}), not {table!r}"
        )
    return np.array([list(r) for r in rows])


def confidence_bin(p: np.ndarray, thres_conf: float, thres_detect: float) -> np.ndarray:
    """0 = confident (p >= thres_conf), 1 = middle, 2 = uncertain (p < thres_detect)."""
    return np.where(p >= thres_conf, 0, np.where(p < thres_detect, 2, 1))


def decide(
    p_bad: np.ndarray,
    p_good: np.ndarray,
    thres_conf: float = 0.99,
    thres_detect: float = 0.91,
    table: str = DEFAULT_TABLE,
) -> np.ndarray:
    """The report's decision on softmax rows of the BadNet and the repaired net: labels in
    0..N, N (= number of classes) meaning rejected."""
    p_bad, p_good = np.asarray(p_bad), np.asarray(p_good)
    n = p_bad.shape[1]
    bad, good = np.argmax(p_bad, axis=1), np.argmax(p_good, axis=1)
    cells = parse_table(table)[
        confidence_bin(p_bad.max(axis=1), thres_conf, thres_detect),
        confidence_bin(p_good.max(axis=1), thres_conf, thres_detect),
    ]
    answer = np.where(cells == ORIGINAL, bad, np.where(cells == REPAIRED, good, n))
    return np.where(bad == good, good, answer).astype(np.int64)


class CsawGoodNet:
    """Fine-pruned repair plus the report's two-threshold decision table."""

    # State the track methods build. The constructor only stores its parameters (checked by
    # `harness submission check`), so these class attributes give the defaults.
    bad: Any = None
    good: Any = None
    pruned: tuple[int, ...] | list[int] = ()
    pruned_layer = ""

    def __init__(
        self,
        layer: str = "auto",
        max_accuracy_drop: float = 0.05,
        fine_tune_epochs: int = 20,
        learning_rate: float = 5e-3,
        batch_size: int = 32,
        thres_conf: float = 0.99,
        thres_detect: float = 0.91,
        table: str = DEFAULT_TABLE,
        fine_tune_images: int = 20_000,
    ) -> None:
        self.layer = layer
        self.max_accuracy_drop = max_accuracy_drop
        self.fine_tune_epochs = fine_tune_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.thres_conf = thres_conf
        self.thres_detect = thres_detect
        self.table = table
        self.fine_tune_images = fine_tune_images

    def _validate(self) -> None:
        """All parameter checks, in one place (one ValueError naming the parameter)."""
        if not 0.0 <= self.thres_detect <= self.thres_conf <= 1.0:
            raise ValueError(
                "need 0 <= thres_detect <= thres_conf <= 1, got "
                f"thres_detect={self.thres_detect}, thres_conf={self.thres_conf}"
            )
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise ValueError(f"max_accuracy_drop must be in [0, 1], not {self.max_accuracy_drop}")
        if self.fine_tune_epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(
                "need fine_tune_epochs >= 0, batch_size >= 1 and learning_rate > 0, got "
                f"{self.fine_tune_epochs}, {self.batch_size}, {self.learning_rate}"
            )
        if not isinstance(self.layer, str) or not self.layer:
            raise ValueError(f"layer must be 'auto' or a Conv2D layer's name, not {self.layer!r}")
        parse_table(self.table)

    # -- repair track ---------------------------------------------------------------------
    def repair(self, model: Any, clean: CleanData) -> None:
        import keras

        self._validate()
        self.bad = model
        net = keras.models.clone_model(model)
        net.set_weights(model.get_weights())
        conv = pruning.choose_layer(net, self.layer)
        self.pruned_layer = conv.name
        self.pruned = pruning.prune(net, conv, clean.x, clean.y, self.max_accuracy_drop)
        if self.fine_tune_epochs:
            pruning.fine_tune(
                net,
                clean.x,
                clean.y,
                pruning.FineTuning(
                    epochs=self.fine_tune_epochs,
                    learning_rate=self.learning_rate,
                    batch_size=self.batch_size,
                    max_images=self.fine_tune_images,
                ),
                conv=conv,
                pruned=self.pruned,
            )
        self.good = net

    def predict(self, x: np.ndarray) -> np.ndarray:
        p_bad = np.asarray(self.bad.predict_on_batch(x))  # x: one batch <= 256
        p_good = np.asarray(self.good.predict_on_batch(x))
        return decide(p_bad, p_good, self.thres_conf, self.thres_detect, self.table)
