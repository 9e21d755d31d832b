"""Export a fitted estimator for one sequence length: ONNX and ``torch.export``.

The exported graph maps unscaled sequences, float32 of shape ``(n, L, C)`` as
:func:`s4learn.inputs.as_sequences` gives them (a table row is ``(F, 1)``, an image
its pixels), to class probabilities ``(n, n_classes)`` (classifiers) or predictions in
the units of ``y``, ``(n, n_outputs)`` (regressors). The input standardisation learnt
in ``fit`` is part of the graph, so a runtime needs nothing but the exported file. The
batch size may vary; the length ``L`` is fixed at export.

Each S4D layer becomes a :class:`FixedLengthS4D`: its kernel for length ``L`` (with the
skip term ``D`` folded in) is computed once and stored as a real tensor, and the
convolution is a depthwise ``conv1d`` with causal padding (both sides for a
bidirectional layer), so the graph has no complex numbers and no FFT, which ONNX
cannot express. It computes what the layer's FFT convolution computes, in
``O(L^2)`` operations per channel instead of ``O(L log L)``.
"""

import copy

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from .extras import import_extra
from .nn import S4D


class FixedLengthS4D(nn.Module):
    """An :class:`~s4learn.nn.S4D` layer for sequences of one length, in real ops only.

    Parameters
    ----------
    layer : S4D
        The layer (read, not modified; its output projection is shared).
    length : int
        The sequence length L.
    """

    output = S4D.output  # activation, dropout and gated output projection

    def __init__(self, layer, length):
        super().__init__()
        with torch.no_grad():
            k = layer.kernel_with_skip(length).detach()  # (H L) or (H 2L)
        # lags -(L-1)..-1 (bidirectional: the last taps of the length-2L kernel), 0..L-1
        negative = k[:, length + 1:]
        by_lag = torch.cat([negative, k[:, :length]], dim=-1)  # (H K)
        # conv1d correlates: the weight runs from the largest lag to the smallest
        self.register_buffer("weight", by_lag.flip(-1).unsqueeze(1).contiguous())  # (H 1 K)
        self.padding = (length - 1, negative.shape[-1])
        self.n_groups = layer.n_groups
        self.activation = layer.activation
        self.dropout = layer.dropout
        self.output_linear = layer.output_linear

    def ssm_convolution(self, u):
        """``y = K * u + D u`` of ``u`` (B, L, H), as :meth:`S4D.ssm_convolution`."""
        u_t = F.pad(u.transpose(-1, -2), self.padding)  # (B H L+K-1)
        y = F.conv1d(u_t, self.weight, groups=self.weight.shape[0])  # (B H L)
        return y.transpose(-1, -2)

    def forward(self, u):
        return self.output(self.ssm_convolution(u))


class FixedLengthModel(nn.Module):
    """A fitted estimator's prediction as one module: scaling, network, output map.

    Parameters
    ----------
    estimator : S4Classifier or S4Regressor
        A fitted estimator (read, not modified).
    length : int
        The sequence length L of the inputs.
    """

    def __init__(self, estimator, length):
        super().__init__()
        check_is_fitted(estimator)
        if not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        network = copy.deepcopy(estimator.net_.module_).cpu().eval()
        network.layers = nn.ModuleList(FixedLengthS4D(layer, int(length))
                                       for layer in network.layers)
        self.network = network
        n_channels = network.d_input
        weight, bias = _input_scaling(estimator, int(length), n_channels)
        self.register_buffer("input_weight", weight)
        self.register_buffer("input_bias", bias)
        self.is_classifier = is_classifier(estimator)
        if not self.is_classifier:
            self.register_buffer("target_scale", _float32(estimator.target_scale_))
            self.register_buffer("target_mean", _float32(estimator.target_mean_))

    def forward(self, x):
        """``x`` (n, L, C) unscaled -> probabilities or predictions (n, n_outputs)."""
        outputs = self.network(x * self.input_weight + self.input_bias)
        if self.is_classifier:
            return torch.softmax(outputs, dim=-1)
        return outputs * self.target_scale + self.target_mean


def export_program(estimator, length):
    """``torch.export`` program of a fitted estimator's prediction for length ``length``.

    Its input is ``x`` of shape ``(n, length, C)``, float32, unscaled, with any batch
    size ``n``; see :mod:`s4learn.export` for the output.

    Returns
    -------
    torch.export.ExportedProgram
        Run it with ``program.module()(x)``; save it with ``torch.export.save``.
    """
    model = FixedLengthModel(estimator, length)
    example = (_example_input(model, length),)
    batch = torch.export.Dim("batch")
    return torch.export.export(model, example, dynamic_shapes={"x": {0: batch}})


def export_onnx(estimator, path, length):
    """Write a fitted estimator's prediction for length ``length`` as an ONNX model.

    The graph's input is ``sequences`` of shape ``(n, length, C)``, float32, unscaled,
    with any batch size; its output is ``probabilities`` (classifiers) or
    ``predictions`` (regressors), shape ``(n, n_outputs)``. Needs the ``export`` extra
    (onnx, onnxscript, onnxruntime).

    Parameters
    ----------
    estimator : S4Classifier or S4Regressor
        A fitted estimator.
    path : str or path-like
        The ``.onnx`` file to write (one file, weights included).
    length : int
        Sequence length of the inputs.
    """
    import_extra("onnxscript", "export", "export_onnx")  # torch.onnx's exporter needs it
    program = export_program(estimator, length)
    output = "probabilities" if is_classifier(estimator) else "predictions"
    onnx_program = torch.onnx.export(program, input_names=["sequences"],
                                     output_names=[output], dynamo=True,
                                     external_data=False, verbose=False)
    onnx_program.save(str(path), external_data=False)


def _input_scaling(estimator, length, n_channels):
    """``(weight, bias)`` of shape (L, C) with ``transform(x) == x * weight + bias``.

    Read off the estimator's own scaling by probing it, so any elementwise affine
    scaling is exported as it is; anything else is refused.
    """
    transform = estimator.input_scaling_.transform
    if estimator.input_scaling_.n_channels_added:
        raise ValueError("a model fitted with missing='mask' cannot be exported: its "
                         "inputs gain indicator channels from NaN")
    zeros = np.zeros((1, length, n_channels), dtype=np.float32)
    bias = transform(zeros)[0]
    weight = transform(zeros + 1)[0] - bias
    probe = np.random.RandomState(0).randn(1, length, n_channels).astype(np.float32)
    if not np.allclose(transform(probe)[0], probe[0] * weight + bias,
                       rtol=1e-5, atol=1e-6):
        raise ValueError(f"{type(estimator).__name__}'s input scaling is not elementwise "
                         f"affine: it cannot be exported")
    return _float32(weight), _float32(bias)


def _example_input(model, length):
    return torch.zeros(2, length, model.network.d_input)


def _float32(array):
    return torch.as_tensor(np.asarray(array), dtype=torch.float32)
