"""Streaming prediction: the S4D recurrence through the whole network."""

import copy

import numpy as np
import pytest

from s4learn import S4Classifier, S4Regressor
from s4learn.nn import S4Model
from s4learn.streaming import StreamingPredictor

TINY = dict(d_model=8, n_layers=2, d_state=8, dt_min=0.01, dt_max=1.0, max_epochs=2,
            random_state=0)
LENGTH = 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, LENGTH, 2) * 2 + 1  # unscaled: the predictor scales as predict does
    return X, (X[:, :, 0].sum(axis=1) > 12).astype(int)


def on_prefix(estimator, length):
    """The estimator, reading samples of ``length`` steps (the network takes any length)."""
    prefix = copy.copy(estimator)
    prefix.input_shape_ = (length, *estimator.input_shape_[1:])
    prefix.n_features_in_ = int(np.prod(prefix.input_shape_))
    prefix.layout = "NLC"  # a prefix may have fewer steps than channels
    return prefix


def stream_step_by_step(predictor, X):
    predictor.reset(n_streams=len(X))
    return np.concatenate([predictor.update(X[:, t:t + 1]) for t in range(X.shape[1])],
                          axis=1)


@pytest.mark.parametrize("prenorm, norm, differences", [
    (False, "layer", False), (True, "layer", False), (True, "batch", True),
    (False, "batch", False), (True, "batch", "log")])
@pytest.mark.parametrize("pool", ["mean", "last", "stats"])
def test_classifier_stream_equals_predict_proba_on_every_prefix(data, prenorm, norm,
                                                                differences, pool):
    X, y = data
    network = S4Model(d_input=2, d_output=2, d_model=TINY["d_model"],
                      n_layers=TINY["n_layers"], d_state=TINY["d_state"], prenorm=prenorm,
                      norm=norm, differences=bool(differences),
                      log_differences=differences == "log", dt_min=TINY["dt_min"],
                      dt_max=TINY["dt_max"], pool=pool)
    model = S4Classifier(**TINY, pretrained=network).fit(X, y)  # that architecture
    predictor = StreamingPredictor(model)
    streamed = stream_step_by_step(predictor, X[:5])
    assert streamed.shape == (5, LENGTH, 2)
    for t in range(1, LENGTH + 1):
        np.testing.assert_allclose(streamed[:, t - 1],
                                   on_prefix(model, t).predict_proba(X[:5, :t]),
                                   rtol=0, atol=1e-5)
    np.testing.assert_array_equal(predictor.predict_proba(), streamed[:, -1])
    np.testing.assert_array_equal(predictor.predict(), model.predict(X[:5]))


@pytest.mark.parametrize("two_targets", [False, True])
def test_regressor_stream_equals_predict_on_every_prefix(data, two_targets):
    X, _ = data
    y = X.sum(axis=(1, 2)) * 10
    if two_targets:
        y = np.stack([y, X[:, -1, 1]], axis=1)
    model = S4Regressor(**TINY).fit(X, y)
    predictor = StreamingPredictor(model)
    streamed = stream_step_by_step(predictor, X[:4])
    assert streamed.shape == ((4, LENGTH, 2) if two_targets else (4, LENGTH))
    scale = np.abs(y).max()
    for t in range(1, LENGTH + 1):
        np.testing.assert_allclose(streamed[:, t - 1] / scale,
                                   on_prefix(model, t).predict(X[:4, :t]) / scale,
                                   rtol=0, atol=1e-5)
    np.testing.assert_array_equal(predictor.predict(), streamed[:, -1])


def test_chunks_equal_steps(data):
    X, y = data
    predictor = StreamingPredictor(S4Classifier(**TINY).fit(X, y))
    step_by_step = stream_step_by_step(predictor, X[:3])
    predictor.reset(n_streams=3)
    chunked = np.concatenate([predictor.update(X[:3, :5]), predictor.update(X[:3, 5:])],
                             axis=1)
    np.testing.assert_array_equal(chunked, step_by_step)
    predictor.reset()  # one stream, given as (T, C); a batch of one rounds differently
    np.testing.assert_allclose(predictor.update(X[1]), step_by_step[1], rtol=0, atol=1e-6)
    assert predictor.n_steps_ == LENGTH


def test_bad_models_and_steps_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="bidirectional model cannot predict from a stream"):
        StreamingPredictor(S4Classifier(**{**TINY, "max_epochs": 1},
                                        bidirectional=True).fit(X, y))
    predictor = StreamingPredictor(S4Classifier(**{**TINY, "max_epochs": 1}).fit(X, y))
    with pytest.raises(ValueError, match="no step read yet"):
        predictor.predict()
    with pytest.raises(ValueError, match=r"shape \(n_streams, T, 2\) or \(T, 2\)"):
        predictor.update(X[0, :, :1])
    with pytest.raises(ValueError, match=r"call reset\(n_streams=3\)"):
        predictor.update(X[:3])
    with pytest.raises(ValueError, match="n_streams must be a positive int"):
        predictor.reset(0)
