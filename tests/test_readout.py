"""The closed-form readout: ridge with leave-one-out penalties, refitted after training."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeClassifierCV, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s4learn import S4Classifier, S4Regressor
from s4learn.nn.model import pooled_out
from s4learn.readout import ALPHAS, best_temperature, readout_layer, ridge_loo
from s4learn.training import net_outputs


@pytest.fixture
def regression_problem():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 5) * [1, 10, 0.1, 3, 1] + [0, 5, -2, 0, 1]
    Y = X @ rng.randn(5, 2) + 0.5 * rng.randn(40, 2)
    return X, Y, rng.uniform(0.5, 2.0, 40)


def test_ridge_is_weighted_ridge_on_standardised_features(regression_problem):
    X, Y, w = regression_problem
    fit = ridge_loo(X, Y, w, alphas=[3.0])
    mean = w @ X / w.sum()
    scale = np.sqrt(((X - mean) ** 2).mean(axis=0))
    reference = Ridge(alpha=3.0).fit((X - mean) / scale, Y, sample_weight=w)
    np.testing.assert_allclose(X @ fit.coef + fit.intercept,
                               reference.predict((X - mean) / scale), atol=1e-9)


def test_leave_one_out_predictions_equal_refits_without_the_sample(regression_problem):
    X, Y, w = regression_problem
    fit = ridge_loo(X, Y, w, alphas=[3.0])
    mean = w @ X / w.sum()
    scale = np.sqrt(((X - mean) ** 2).mean(axis=0))
    Z = (X - mean) / scale  # the left-out fits keep the standardisation of all samples
    for i in (0, 17, 39):
        rest = np.arange(len(X)) != i
        refit = Ridge(alpha=3.0).fit(Z[rest], Y[rest], sample_weight=w[rest])
        np.testing.assert_allclose(fit.loo_predictions[i], refit.predict(Z[i:i + 1])[0],
                                   atol=1e-9)


def test_penalty_is_the_one_of_least_leave_one_out_error(regression_problem):
    X, Y, _ = regression_problem
    fit = ridge_loo(X, Y, np.ones(len(X)), alphas=ALPHAS)
    reference = RidgeCV(alphas=ALPHAS).fit(StandardScaler().fit_transform(X), Y)
    assert fit.alpha == reference.alpha_


def test_samples_of_negligible_weight_do_not_steer_the_fit():
    # the second feature varies only among the samples of weight 1e-7: a scale taken
    # from the weighted deviation would blow it up and fit those samples exactly
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.randn(60), np.r_[np.zeros(40), rng.randn(20)]])
    y = np.r_[X[:40, 0], np.sign(X[40:, 1])][:, None]
    w = np.r_[np.ones(40), np.full(20, 1e-7)]
    fit = ridge_loo(X, y, w)
    assert np.abs(X[40:] @ fit.coef + fit.intercept - X[40:, :1]).max() < 0.1


def test_zero_weight_samples_take_no_part(regression_problem):
    X, Y, w = regression_problem
    w = w.copy()
    w[:5] = 0.0
    fit = ridge_loo(X, Y, w)
    without = ridge_loo(X[5:], Y[5:], w[5:])
    np.testing.assert_allclose(fit.coef, without.coef, atol=1e-10)
    assert np.isnan(fit.loo_predictions[:5]).all()


def test_temperature_recovers_the_scale_of_calibrated_scores():
    rng = np.random.RandomState(0)
    logits = 3.0 * rng.randn(20000, 4)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])
    temperature = best_temperature(logits / 8.0, labels, np.ones(len(labels)))
    assert 7.0 < temperature < 9.0


def test_each_member_gets_its_own_fit(regression_problem):
    X, Y, w = regression_problem
    pooled = np.hstack([X, X[:, ::-1] ** 2])
    weight, bias, _ = readout_layer(pooled, Y, w, n_members=2, n_outputs=2,
                                    classifier=False)
    second = ridge_loo(X[:, ::-1] ** 2, Y, w)
    assert weight.shape == (2, 2, 5) and bias.shape == (4,)
    np.testing.assert_allclose(weight[1], second.coef.T)
    np.testing.assert_allclose(bias[2:], second.intercept)


def pooled_features(estimator, X):
    """The fitted network's pooled features of X, as its output layer reads them."""
    inputs = estimator._net_inputs(X.reshape(len(X), -1, 1).astype(np.float32), None)
    with pooled_out(estimator.net_.module_):
        return net_outputs(estimator.net_, inputs)


def test_regressor_predicts_as_ridgecv_on_its_pooled_features(tiny):
    rng = np.random.RandomState(1)
    X = rng.randn(80, 12)
    y = 3 * np.cumsum(X, axis=1)[:, -4:].mean(axis=1) + 10
    regressor = S4Regressor(**tiny).fit(X[:60], y[:60])
    scaled_y = (y[:60] - regressor.target_mean_) / regressor.target_scale_
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(
        pooled_features(regressor, X[:60]), scaled_y)
    expected = ridge.predict(pooled_features(regressor, X[60:])) \
        * regressor.target_scale_ + regressor.target_mean_
    np.testing.assert_allclose(regressor.predict(X[60:]), expected, rtol=1e-4, atol=1e-4)


def test_classifier_predicts_as_ridge_classifier_on_its_pooled_features(digits_split,
                                                                         tiny):
    X, y, X_test, _ = digits_split
    classifier = S4Classifier(**tiny).fit(X, y)
    ridge = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=ALPHAS)).fit(
        pooled_features(classifier, X), y)
    agree = classifier.predict(X_test) == ridge.predict(pooled_features(classifier, X_test))
    assert agree.mean() >= 0.98  # float32 features: a near tie may break the other way


def test_readout_lifts_a_short_fit_on_real_data(digits_split, tiny):
    """Three epochs leave the output layer of gradient descent far behind the ridge."""
    X, y, X_test, y_test = digits_split
    refitted = S4Classifier(**tiny).fit(X, y)
    trained = S4Classifier(**tiny)
    for _ in range(3):  # partial_fit keeps the output layer of gradient descent
        trained.partial_fit(X, y, classes=np.unique(y))
    assert refitted.score(X_test, y_test) >= trained.score(X_test, y_test) + 0.1
