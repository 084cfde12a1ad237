"""The in-memory data set record and the loader façade."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import SpecError


@dataclass(frozen=True)
class Dataset:
    """Images in NHWC float32 within ``input_range``, integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_range: tuple[float, float] = (0.0, 1.0)
    preprocessing: str = "none"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


DATASETS = ("mnist",)


def load_dataset(name: str, source: Path | None = None) -> Dataset:
    """Load a data set by name; ``source`` points at a user's own copy where supported."""
    if name == "mnist":
        from harness.data.mnist import load_mnist

        return load_mnist(source)
    raise SpecError(f"unknown dataset {name!r}", fix=f"use one of: {', '.join(DATASETS)}")
