"""Recorded predictions stay the same: behaviour changes only on purpose.

The fits of :mod:`recorded_fits` are rerun and compared with the recorded predictions
(``tests/data/recorded_predictions.npz``), and the model file of version 0.1.0 with the
predictions it gave then. They are compared to float32 rounding (``rtol=1e-5``): the
same operations may be grouped differently.
"""

import numpy as np
import pytest
from recorded_fits import (
    OLD_MODEL,
    OLD_MODEL_KEY,
    RECORDED,
    exported,
    fit_cases,
    predictions,
    streamed,
)

from s4learn import load_model

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def cases():
    return fit_cases()


@pytest.fixture(scope="module")
def recorded():
    with np.load(RECORDED) as file:
        return dict(file)


@pytest.mark.parametrize("name", ["classifier_equal", "classifier_unequal", "regressor_table",
                                  "classifier_images", "finetuned_lora"])
def test_fit_predicts_as_recorded(cases, recorded, name):
    model, X = cases[name]
    np.testing.assert_allclose(predictions(model, X), recorded[name], **TOLERANCE)


def test_stream_and_export_as_recorded(cases, recorded):
    classifier, X = cases["classifier_equal"]
    np.testing.assert_allclose(streamed(classifier, X[:4]), recorded["streamed"], **TOLERANCE)
    np.testing.assert_allclose(exported(classifier, X[:4]), recorded["exported"], **TOLERANCE)


def test_model_file_of_0_1_0_loads_and_predicts_as_recorded(cases, recorded):
    _, X = cases["regressor_table"]
    model = load_model(OLD_MODEL)
    np.testing.assert_allclose(model.predict(X), recorded[OLD_MODEL_KEY], **TOLERANCE)
