"""Exporting fitted estimators: fixed-length real convolution, torch.export and ONNX."""

import sys

import numpy as np
import pytest
import torch

from s4learn import S4Classifier, S4Regressor
from s4learn.export import FixedLengthS4D, export_onnx, export_program
from s4learn.nn import S4D

TINY = dict(d_model=8, n_layers=2, d_state=8, dt_min=0.01, dt_max=1.0, max_epochs=2,
            random_state=0)
LENGTH = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, LENGTH, 2) * 3 + 1
    return X, (X[:, :, 0].sum(axis=1) > 16).astype(int)


@pytest.fixture(scope="module", params=[False, True],
                ids=["causal-linear-differences", "bidirectional-log-differences"])
def classifier(request, data):
    X, y = data
    return S4Classifier(**TINY, bidirectional=request.param,
                        difference_channels="log" if request.param else "linear").fit(X, y)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", ["fast", "plain"])
def test_real_convolution_equals_the_fft_convolution(bidirectional, mode):
    torch.manual_seed(0)
    layer = S4D(d_model=6, d_state=8, bidirectional=bidirectional, mode=mode).eval()
    u = torch.randn(3, 20, 6)
    with torch.no_grad():
        expected = layer(u)
        fixed = FixedLengthS4D(layer, 20)
        torch.testing.assert_close(fixed.ssm_convolution(u), layer.ssm_convolution(u),
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(fixed(u), expected, rtol=0, atol=1e-5)


def test_program_equals_predict_proba(classifier, data):
    X, _ = data
    program = export_program(classifier, LENGTH)
    x = torch.tensor(X[:7], dtype=torch.float32)  # a batch size other than the example's
    with torch.no_grad():
        probabilities = program.module()(x).numpy()
    np.testing.assert_allclose(probabilities, classifier.predict_proba(X[:7]), rtol=0,
                               atol=1e-5)


def test_program_equals_the_network_for_a_regressor(data):
    X, _ = data
    y = np.stack([X.sum(axis=(1, 2)), X[:, -1, 1]], axis=1) * 10
    model = S4Regressor(**TINY).fit(X, y)
    program = export_program(model, LENGTH)
    x = torch.tensor(X, dtype=torch.float32)
    scaled = torch.tensor(model.input_scaling_.transform(X.astype(np.float32)))
    with torch.no_grad():
        predictions = program.module()(x)
        outputs = model.net_.module_.eval()(scaled.to(model.net_.device)).cpu()
    expected = outputs * torch.tensor(model.target_scale_, dtype=torch.float32) \
        + torch.tensor(model.target_mean_, dtype=torch.float32)
    torch.testing.assert_close(predictions, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(predictions.numpy(), model.predict(X), rtol=1e-5, atol=1e-4)


def test_onnx_in_onnxruntime_equals_predict_proba(classifier, data, tmp_path):
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    X, _ = data
    export_onnx(classifier, tmp_path / "model.onnx", LENGTH)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["sequences"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    for batch in (X[:1], X):
        (probabilities,) = session.run(None, {"sequences": batch.astype(np.float32)})
        np.testing.assert_allclose(probabilities, classifier.predict_proba(batch), rtol=0,
                                   atol=1e-5)


def test_missing_onnx_packages_name_the_extra(classifier, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "s4learn\[export\]"'):
        export_onnx(classifier, tmp_path / "model.onnx", LENGTH)


def test_scaling_that_is_not_affine_is_refused(data, monkeypatch):
    X, y = data
    model = S4Classifier(**{**TINY, "max_epochs": 1}).fit(X, y)
    monkeypatch.setattr(model.input_scaling_, "transform", np.tanh)
    with pytest.raises(ValueError, match="not elementwise affine"):
        export_program(model, LENGTH)
    with pytest.raises(ValueError, match="length must be a positive int"):
        export_program(model, 0)
