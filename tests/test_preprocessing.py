"""SequenceWindows: windows of time-ordered rows, aligned with the targets."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline

from s4learn import S4Regressor
from s4learn.preprocessing import SequenceWindows, drop_padded


def test_windows_end_at_each_row():
    X = np.arange(12.0).reshape(6, 2)
    windows = SequenceWindows(3).fit_transform(X)
    assert windows.shape == (6, 3, 2)
    np.testing.assert_array_equal(windows[4], X[2:5])
    np.testing.assert_array_equal(windows[0], np.repeat(X[:1], 3, axis=0))


def test_zero_padding_and_drop_padded():
    X = np.arange(1.0, 13.0).reshape(6, 2)
    windows = SequenceWindows(3, padding="zeros").fit_transform(X)
    np.testing.assert_array_equal(windows[0], [[0, 0], [0, 0], [1, 2]])
    kept, y = drop_padded(windows, np.arange(6), 3)
    assert kept.shape == (4, 3, 2) and y.tolist() == [2, 3, 4, 5]
    np.testing.assert_array_equal(kept[0], X[:3])


@pytest.mark.parametrize("params", [{"window": 0}, {"padding": "mirror"}])
def test_bad_parameters(params):
    with pytest.raises(ValueError):
        SequenceWindows(**params).fit(np.ones((3, 2)))


def test_pipeline_with_regressor():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.randn(60, 2), columns=["a", "b"])
    y = frame["a"].rolling(4, min_periods=1).sum().to_numpy()
    settings = dict(d_model=8, n_layers=1, d_state=8, max_epochs=2,
                    random_state=0)
    model = make_pipeline(SequenceWindows(4), S4Regressor(**settings))
    predictions = model.fit(frame, y).predict(frame)
    windows = SequenceWindows(4).fit_transform(frame)
    by_hand = S4Regressor(**settings).fit(windows, y).predict(windows)
    np.testing.assert_array_equal(predictions, by_hand)  # each row gets its own window
    assert list(model.feature_names_in_) == ["a", "b"]
