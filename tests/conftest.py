"""Shared test settings and fixtures: tiny networks, digits, fitted models reused across files.

The session fixtures hold fitted estimators that several test files read; a test must not
refit or change them (clone them first).
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from s4learn import S4Classifier, S4Regressor

# The models in the tests are tiny: one thread runs them as fast as two, and several test
# processes on a small machine do not fight over cores.
torch.set_num_threads(1)

# a tiny bidirectional network, with step sizes sized for sequences of tens of steps
TINY = dict(d_model=8, n_layers=1, d_state=8, bidirectional=True, dt_min=0.01, dt_max=1.0,
            max_epochs=3, random_state=0)


@pytest.fixture
def tiny():
    """The tiny settings, a fresh dict for each test."""
    return dict(TINY)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits: 1797 samples of 64 values, and their labels."""
    return load_digits(return_X_y=True)


@pytest.fixture(scope="session")
def digits_split(digits):
    """240 digits to train on and the next 120 to validate on."""
    X, y = digits
    return X[:240], y[:240], X[240:360], y[240:360]


@pytest.fixture(scope="session")
def validated_classifier(digits_split):
    """The tiny classifier fitted on the digits split, with validation data."""
    X, y, X_val, y_val = digits_split
    return S4Classifier(**TINY).fit(X, y, validation_data=(X_val, y_val))


@pytest.fixture(scope="session")
def unvalidated_classifier(digits_split):
    """The tiny classifier fitted on the training part of the split alone."""
    X, y, _, _ = digits_split
    return S4Classifier(**TINY).fit(X, y)


@pytest.fixture(scope="session")
def fitted_regressor():
    """The tiny regressor fitted on 60 random rows of 20 values to their sum, and X."""
    X = np.random.RandomState(0).randn(60, 20)
    return S4Regressor(**TINY).fit(X, X.sum(axis=1)), X
