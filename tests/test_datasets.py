"""The data set loaders, on small files written in the real on-disk formats."""

import gzip
import hashlib
import pickle
import struct
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.datasets import CIFAR10

from s4learn.datasets import (
    load_cifar10,
    load_digits_images,
    load_mnist,
    load_table,
    make_deep_s4_regression,
)


def write_idx(path, array, compress=False):
    """Write ``array`` (uint8) as an IDX file, the format of the MNIST files."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I",
                                                                   *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root, compress, n_train=6, n_test=4):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.RandomState(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.randint(0, 10, n).astype(np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
        arrays[prefix] = images, labels
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress)
    for train, prefix in ((True, "train"), (False, "t10k")):
        X, y = load_mnist(tmp_path, train=train)
        np.testing.assert_array_equal(X, arrays[prefix][0])
        np.testing.assert_array_equal(y, arrays[prefix][1])
        assert X.dtype == np.uint8 and y.dtype == np.int64


def test_load_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST not found"):
        load_mnist(tmp_path)


def write_cifar10(root, monkeypatch, n_per_batch=3):
    """Write CIFAR-10 python batches and make torchvision check their own md5 sums."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, (n_per_batch, 3 * 32 * 32)).astype(np.uint8)
        labels = rng.randint(0, 10, n_per_batch).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        batches[name] = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list",
                        [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5("batches.meta")})
    return batches


def test_load_cifar10_reads_python_batches(tmp_path, monkeypatch):
    batches = write_cifar10(tmp_path, monkeypatch)
    X, y = load_cifar10(tmp_path, train=True)
    assert X.shape == (15, 32, 32, 3) and X.dtype == np.uint8
    np.testing.assert_array_equal(X[:3], batches["data_batch_1"][0])
    X_test, y_test = load_cifar10(tmp_path, train=False, grayscale=True)
    assert X_test.shape == (3, 32, 32) and X_test.dtype == np.uint8
    assert y_test.tolist() == batches["test_batch"][1]


def test_load_cifar10_corrupt_batch(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"damaged")
    with pytest.raises(FileNotFoundError, match="CIFAR10 not found or corrupt"):
        load_cifar10(tmp_path, train=False)


def test_load_digits_images():
    X, y = load_digits_images()
    assert X.shape == (1797, 8, 8) and y.shape == (1797,)
    assert X.max() == 16 and set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_table_round_trip(tmp_path, suffix):
    frame = pd.DataFrame({"a": [1.0, 2.0], "label": ["x", "y"]})
    path = tmp_path / f"table{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    pd.testing.assert_frame_equal(load_table(path), frame, check_dtype=False)


def test_load_table_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_table(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="expected a .csv or .parquet"):
        load_table(tmp_path / "table.txt")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="cannot read"):
        load_table(tmp_path / "bad.parquet")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "table.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails
    with pytest.raises(ImportError, match=r'^reading .parquet files needs pyarrow: '
                                          r'pip install "s4learn\[parquet\]"$'):
        load_table(path)


def test_deep_s4_regression_is_deterministic_and_shaped():
    settings = dict(n_samples=50, seq_len=12, d_model=4, frozen_n_layers=3,
                    frozen_d_state=6)
    X, y, base = make_deep_s4_regression(**settings, random_state=1)
    X2, y2, base2 = make_deep_s4_regression(**settings, random_state=1)
    X3, y3, _ = make_deep_s4_regression(**settings, random_state=2)
    assert X.shape == (50, 12, 4) and X.dtype == np.float32 and y.shape == (50,)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(),
                                                 base2.state_dict().values()))
    assert not np.allclose(y, y3)
    np.testing.assert_allclose([y.mean(), y.std()], [0, 1], atol=1e-9)  # standardised
    assert len(base.layers) == 3 and base.layers[0].kernel.log_A_real.shape == (4, 3)
    assert not base.training
    with torch.no_grad():  # the base is another network than the target
        assert not np.allclose(base(torch.from_numpy(X)).numpy().ravel(), y, atol=0.1)
    _, y_multi, _ = make_deep_s4_regression(n_samples=20, n_outputs=2, noise=0.5,
                                            random_state=0)
    assert y_multi.shape == (20, 2)
