"""The training curves the estimators expose from ``net_.history``."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score

from s4learn import S4Classifier, S4Regressor
from s4learn.training import valid_r2

CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_", "best_loss_")


def test_curves_equal_the_history_columns(validated_classifier, tiny):
    validated = validated_classifier
    history = validated.net_.history
    assert validated.loss_curve_ == history[:, "train_loss"]
    assert validated.validation_scores_ == history[:, "valid_acc"]
    assert validated.validation_loss_curve_ == history[:, "valid_loss"]
    # the closed-form output layer lowered the validation loss, so fit kept it
    assert history[-1, "readout_valid_loss"] < min(history[:, "valid_loss"])
    assert validated.best_loss_ == history[-1, "readout_valid_loss"]
    assert len(validated.loss_curve_) == validated.n_epochs_ == tiny["max_epochs"]


def test_without_validation_data_the_validation_curves_are_none(unvalidated_classifier):
    clf = unvalidated_classifier
    assert clf.validation_scores_ is None
    assert clf.validation_loss_curve_ is None
    assert clf.loss_curve_ == clf.net_.history[:, "train_loss"]
    assert clf.best_loss_ == min(clf.net_.history[:, "train_loss"])


def test_regressor_scores_are_r2_of_its_held_out_fraction(tiny):
    X = np.random.RandomState(0).randn(200, 12)
    reg = S4Regressor(**{**tiny, "max_epochs": 4}, patience=10).fit(X, X.sum(axis=1))
    history = reg.net_.history
    assert reg.validation_scores_ == history[:, "valid_r2"]
    assert reg.validation_loss_curve_ == history[:, "valid_loss"]


def test_best_loss_is_the_validation_loss_of_the_kept_weights(digits_split, tiny):
    X, y, X_val, y_val = digits_split
    # 60 samples at a high rate: the validation loss turns up before max_epochs
    clf = S4Classifier(**{**tiny, "max_epochs": 10, "lr": 0.3}, batch_size=8, patience=2)
    clf.fit(X[:60], y[:60], validation_data=(X_val, y_val))
    assert clf.validation_loss_curve_[-1] > clf.best_loss_  # the last epoch is not kept
    proba = clf.predict_proba(X_val)
    cross_entropy = -np.log(proba[np.arange(len(y_val)), y_val]).mean()
    np.testing.assert_allclose(clf.best_loss_, cross_entropy, rtol=1e-4)


def test_epochs_without_validation_data_are_none_in_the_validation_curves(digits_split, tiny):
    X, y, X_val, y_val = digits_split
    clf = S4Classifier(**tiny).fit(X, y, validation_data=(X_val, y_val))
    clf.partial_fit(X, y)
    assert len(clf.validation_loss_curve_) == len(clf.loss_curve_) == tiny["max_epochs"] + 1
    assert clf.validation_loss_curve_[-1] is None
    assert clf.validation_scores_[-1] is None
    assert None not in clf.validation_loss_curve_[:-1]
    assert clf.best_loss_ == min(clf.validation_loss_curve_[:-1]
                                 + [clf.net_.history[-2, "readout_valid_loss"]])


@pytest.mark.parametrize("estimator_class", [S4Classifier, S4Regressor])
@pytest.mark.parametrize("name", CURVES)
def test_curves_before_fit_raise_not_fitted(estimator_class, name):
    estimator = estimator_class()
    with pytest.raises(NotFittedError):
        getattr(estimator, name)
    assert not hasattr(estimator, name)  # NotFittedError is an AttributeError


class _FixedOutputs:
    """Stands in for the net: ``forward`` returns the given predictions."""

    def __init__(self, y_pred):
        self.y_pred = y_pred

    def forward(self, X):
        return torch.as_tensor(self.y_pred)


@pytest.mark.parametrize("y, y_pred", [
    (np.arange(6.0), np.arange(6.0)[::-1].copy()),
    (np.c_[np.arange(6.0), np.ones(6)], np.c_[np.arange(6.0) + 0.5, np.ones(6)]),
    (np.c_[np.arange(6.0), np.ones(6)], np.c_[np.arange(6.0) + 0.5, np.full(6, 2.0)]),
])
def test_validation_r2_is_r2_score_averaged_over_outputs(y, y_pred):
    net = _FixedOutputs(y_pred.reshape(len(y), -1))
    assert valid_r2(net, None, y) == pytest.approx(r2_score(y, y_pred))


def test_validation_r2_of_a_constant_target_is_1_when_exact_else_0():
    y = np.full(5, 3.0)
    assert valid_r2(_FixedOutputs(np.full((5, 1), 3.0)), None, y) == 1.0
    assert valid_r2(_FixedOutputs(np.full((5, 1), 2.0)), None, y) == 0.0
