"""load_ucr: UCR/UEA archive data sets through aeon, in s4learn's (n, length, channels)."""

import sys

import numpy as np
import pytest

from s4learn.datasets import load_ucr

aeon_datasets = pytest.importorskip("aeon.datasets")


def test_equal_lengths_give_one_array_time_first():
    X, y = load_ucr("OSULeaf", split="test")
    aeon_X, aeon_y = aeon_datasets.load_classification("OSULeaf", split="test")
    assert X.shape == (242, 427, 1) and X.dtype == np.float64
    np.testing.assert_array_equal(X, aeon_X.transpose(0, 2, 1))
    np.testing.assert_array_equal(y, aeon_y)


def test_unequal_lengths_give_a_list_of_series():
    X, y = load_ucr("JapaneseVowels")
    aeon_X, _ = aeon_datasets.load_classification("JapaneseVowels", split="train")
    assert isinstance(X, list) and len(X) == len(y) == 270
    assert all(series.ndim == 2 and series.shape[1] == 12 for series in X)
    assert len({len(series) for series in X}) > 1
    for series, aeon_series in zip(X, aeon_X):
        np.testing.assert_array_equal(series, aeon_series.T)


def test_bad_split_and_missing_aeon(monkeypatch):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'all'"):
        load_ucr("OSULeaf", split="all")
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "s4learn\[timeseries\]"'):
        load_ucr("OSULeaf")
