"""Every accepted input becomes (n, L, C) float32; bad input is a clear error."""

import numpy as np
import pandas as pd
import pytest
import torch

from s4learn import S4Classifier
from s4learn.inputs import as_sequences

TINY = dict(d_model=8, n_layers=1, d_state=4, max_epochs=1, random_state=0)


def test_table_rows_are_single_channel_sequences():
    X = np.arange(12, dtype=np.float64).reshape(3, 4)
    sequences = as_sequences(X)
    assert sequences.shape == (3, 4, 1) and sequences.dtype == np.float32
    np.testing.assert_array_equal(sequences[..., 0], X)


def test_image_layouts_give_the_same_pixel_sequence():
    rng = np.random.RandomState(0)
    nhwc = rng.randint(0, 256, size=(2, 5, 6, 3)).astype(np.uint8)
    nchw = nhwc.transpose(0, 3, 1, 2)
    a, b = as_sequences(nhwc), as_sequences(nchw)
    assert a.shape == (2, 30, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[0, 6 + 2], nhwc[0, 1, 2] / 255.0, rtol=1e-6)  # row-major


def test_grayscale_and_3d_images():
    rgb = np.ones((2, 4, 4, 3), dtype=np.uint8) * np.array([255, 0, 0], dtype=np.uint8)
    gray = as_sequences(rgb, grayscale=True)
    assert gray.shape == (2, 16, 1)
    np.testing.assert_allclose(gray, 0.299, rtol=1e-6)
    assert as_sequences(np.zeros((2, 4, 5)), input_type="image").shape == (2, 20, 1)
    assert as_sequences(np.zeros((2, 4, 5))).shape == (2, 4, 5)  # 3-D default: sequences


def test_ambiguous_image_layout_is_an_error():
    with pytest.raises(ValueError, match="layout='NHWC' or layout='NCHW'"):
        as_sequences(np.zeros((2, 3, 5, 3)))


def test_dataframe_feature_names_are_checked_at_predict():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.randn(20, 3), columns=["a", "b", "c"])
    y = np.arange(20) % 2
    clf = S4Classifier(**TINY).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c"])
    assert clf.n_features_in_ == 3
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"c": "d"}))
    with pytest.raises(ValueError, match="non-numeric column.*'b'.*OneHotEncoder"):
        clf.fit(frame.assign(b=["x"] * 20), y)


def test_tensors_are_accepted_like_arrays():
    rng = np.random.RandomState(0)
    X = rng.randn(16, 10, 2).astype(np.float32)
    y = np.arange(16) % 2
    clf = S4Classifier(**TINY).fit(torch.from_numpy(X), torch.from_numpy(y))
    np.testing.assert_array_equal(clf.predict(torch.from_numpy(X)), clf.predict(X))


@pytest.mark.parametrize("make_bad,message", [
    (lambda X: np.where(X > 1, np.nan, X), "NaN"),
    (lambda X: np.where(X > 1, np.inf, X), "infinity"),
    (lambda X: X[:0], "0 sample"),
])
def test_bad_training_input_is_a_value_error(make_bad, message):
    X = np.random.RandomState(0).randn(20, 8)
    with pytest.raises(ValueError, match=message):
        S4Classifier(**TINY).fit(make_bad(X), np.arange(len(make_bad(X))) % 2)


def test_ragged_channels_and_one_class_are_errors():
    with pytest.raises(ValueError, match=r"same number of channels; got \[1, 2\]"):
        S4Classifier(layout="NLC", **TINY).fit([np.zeros((3, 1)), np.zeros((4, 2))],
                                                        [0, 1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        S4Classifier(**TINY).fit(np.zeros((5, 4)), ["a"] * 5)


def test_wrong_shape_at_predict_and_any_length_of_a_sequence():
    rng = np.random.RandomState(0)
    clf = S4Classifier(**TINY).fit(rng.randn(10, 8, 2), np.arange(10) % 2)
    assert clf.predict(rng.randn(3, 9, 2)).shape == (3,)  # a sequence of another length
    with pytest.raises(ValueError, match=r"samples of shape \(9, 3\).*\(8, 2\)"):
        clf.predict(rng.randn(3, 9, 3))
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        clf.predict(rng.randn(3, 16))
    table = S4Classifier(**TINY).fit(rng.randn(10, 8), np.arange(10) % 2)
    with pytest.raises(ValueError, match="7 features"):
        table.predict(rng.randn(3, 7))
