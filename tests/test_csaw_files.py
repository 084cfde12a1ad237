"""Reading the contest's files: Keras 2 models (full and weights-only) and HDF5 data."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from csaw_files import write_data, write_keras2_sequential, write_weights_only

from harness.errors import DataError
from harness.zoo.csaw import load_keras2_model, load_weights_only, read_data


def _same_outputs(a, b, shape):
    x = np.random.default_rng(0).random((4, *shape)).astype(np.float32)
    return np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), atol=1e-6)


@pytest.mark.integration  # builds Keras models
def test_keras2_sequential_with_batch_input_shape_is_rebuilt(tmp_path):
    import keras

    path = tmp_path / "bd_net.h5"
    twin = write_keras2_sequential(path, num_classes=10)
    with pytest.raises(Exception):  # noqa: B017 - what Keras 3 does with such a file
        keras.models.load_model(path, compile=False)
    model, how = load_keras2_model(path)
    assert how == "rebuilt" and model.output_shape == (None, 10)
    assert _same_outputs(model, twin, (28, 28, 1))


@pytest.mark.integration  # builds Keras models
def test_weights_only_deepid_file_loads_by_layer_name(tmp_path):
    import keras

    from harness.zoo.architectures import deepid

    keras.utils.set_random_seed(3)
    source = deepid((55, 47, 3), 30)
    path = tmp_path / "sunglasses_bd_weights.h5"
    write_weights_only(path, source)
    with h5py.File(path) as f:  # the contest's group names
        assert {"conv_1", "conv_4", "fc_1", "fc_2", "output"} <= set(f.keys())
    model = load_weights_only(path, "deepid")
    assert model.output_shape == (None, 30)  # class count read from the output layer
    assert _same_outputs(model, source, (55, 47, 3))


@pytest.mark.integration  # builds Keras models
def test_weights_for_another_network_are_refused_with_the_fix(tmp_path):
    path = tmp_path / "w.h5"
    write_keras2_sequential(path)
    with pytest.raises(DataError, match="do not match the architecture.*--arch"):
        load_weights_only(path, "deepid")
    with pytest.raises(DataError, match="weights-only"):
        load_keras2_model(_weights_file(tmp_path))


def _weights_file(tmp_path):
    from harness.zoo.architectures import deepid

    path = tmp_path / "only.h5"
    write_weights_only(path, deepid((55, 47, 3), 5))
    return path


@pytest.mark.parametrize("nchw", [True, False])
def test_contest_data_in_either_layout(tmp_path, nchw):
    x = np.random.default_rng(1).random((6, 55, 47, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 1282])
    path = tmp_path / "clean_test_data.h5"
    write_data(path, x, y, nchw=nchw)
    xs, ys = read_data(path)
    assert xs.shape == (6, 55, 47, 3) and ys.dtype == np.int64 and ys.tolist() == y.tolist()
    assert np.allclose(xs, np.round(x * 255))  # pixels stay 0-255; the card's preprocessing decides


def test_bad_data_files_say_what_is_wrong(tmp_path):
    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_data(not_h5)
    no_label = tmp_path / "nolabel.h5"
    with h5py.File(no_label, "w") as f:
        f["data"] = np.zeros((2, 3, 55, 47))
    with pytest.raises(DataError, match="no 'label' key"):
        read_data(no_label)
    fractional = tmp_path / "frac.h5"
    with h5py.File(fractional, "w") as f:
        f["data"] = np.zeros((2, 3, 55, 47))
        f["label"] = np.array([0.5, 1.0])
    with pytest.raises(DataError, match="whole numbers"):
        read_data(fractional)
    short = tmp_path / "short.h5"
    with h5py.File(short, "w") as f:
        f["data"] = np.zeros((3, 3, 55, 47))
        f["label"] = np.array([0.0, 1.0])
    with pytest.raises(DataError, match="3 images but 2 labels"):
        read_data(short)
