"""Every accepted input -> sequences of shape (n_samples, length, channels), float32.

Accepted inputs:

- a DataFrame or 2-D array ``(n, F)``: each row is a sequence of F steps, one channel;
- a 3-D array ``(n, L, C)``: L steps of C channels, or ``(n, C, L)`` with
  ``layout="NCL"`` (aeon and sktime's layout); all-NaN steps at the end of a
  sequence are padding: the sequence is shorter;
- a list of per-sample arrays of unequal lengths, ``(L_i,)``, ``(L_i, C)`` or
  ``(C, L_i)`` (aeon's list format);
- images: 4-D ``(n, H, W, C)`` or ``(n, C, H, W)``, or 3-D ``(n, H, W)`` with
  ``layout="image"``, read row-major into H*W steps of C channels (sequential
  MNIST/CIFAR); images fitted as ``uint8`` pixels are divided by 255, at fit and at
  predict whatever the dtype of the pixels then (the estimator's ``pixel_scale_``);
- torch tensors and lists of equal-length sequences wherever arrays are accepted.

NaN inside a sequence is a missing value: an error unless the estimator's
``missing="mask"``.

A C-contiguous ``np.memmap`` of sequences ``(n, L)`` or ``(n, L, C)`` (or ``(n, C, L)``
with ``layout="NCL"``) is read from its file batch by batch
(:mod:`s4learn.ondisk`), with ``missing="error"``; it must hold sequences of one
length without NaN. Any other memmap is read into memory like an array.
"""

import functools
import numbers
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.validation import validate_data

from .ondisk import FileSequences, ScaledSequences, streams_from_file
from .parameters import check_value

INPUT_TYPES = ("auto", "sequence", "image")
IMAGE_LAYOUTS = ("auto", "NHWC", "NCHW")
SEQUENCE_LAYOUTS = ("auto", "NLC", "NCL")
_IMAGE_CHANNELS = (1, 3, 4)
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)  # of R, G and B: ITU-R BT.601
_LUMINANCE = np.array(LUMINANCE_WEIGHTS, dtype=np.float32)


class Layout(NamedTuple):
    """How to read an array: as sequences or images, and where its channel axis is."""

    input_type: str = "auto"  # "auto", "sequence" or "image"
    image_layout: str = "auto"  # of 4-D images: "auto", "NHWC" or "NCHW"
    sequence_layout: str = "auto"  # of 3-D sequences: "auto", "NLC" or "NCL"


def read_layout(layout):
    """The :class:`Layout` that an estimator's ``layout`` parameter names."""
    check_value("layout", layout)
    if layout in ("NLC", "NCL"):
        return Layout("sequence", "auto", layout)
    if layout in ("NHWC", "NCHW"):
        return Layout("image", layout, "auto")
    return Layout("image" if layout == "image" else "auto")


def check_sequences(estimator, X, y="no_validation", *, reset, **check_params):
    """Validate ``X`` (and ``y``) for ``estimator`` and shape ``X`` as (n, L, C) float32.

    With ``reset=True`` the per-sample input shape, ``n_features_in_`` (values per
    sample) and, for DataFrames, ``feature_names_in_`` are recorded on the estimator;
    with ``reset=False`` they are checked against what was recorded. Sequences of unequal
    lengths (a list of arrays, or a 3-D array whose trailing steps are NaN) have no fixed
    number of values per sample: only their channels are recorded and checked. The
    estimator's ``layout``, ``grayscale`` and ``missing`` parameters say how to read X.

    Returns
    -------
    X : ndarray of shape (n_samples, length, channels), float32
        Zero after the end of a shorter sequence; NaN where a value is missing. A
        memmap that is read from its file gives a :class:`~s4learn.ondisk.FileSequences`.
    lengths : ndarray of shape (n_samples,), int64, or None
        Real steps of each sequence; None when every sample has all ``length`` steps.
    y : validated ``y``, when ``y`` is given (``y=None`` is an error: fit needs targets)
    """
    input_type, image_layout, sequence_layout = read_layout(estimator.layout)
    missing = check_value("missing", estimator.missing)
    if streams_from_file(X) and input_type != "image" and missing == "error":
        return _check_file_sequences(estimator, X, y, reset, sequence_layout, check_params)
    if _is_ragged(X):
        X, lengths, y = _check_ragged(estimator, X, y, reset, sequence_layout,
                                          check_params)
    else:
        X, lengths, y = _check_array(estimator, X, y, reset, input_type, image_layout,
                                     sequence_layout, check_params)
    _check_channels(estimator, X.shape[-1], reset)
    _check_missing(X, lengths, missing)
    return (X, lengths) if y is None else (X, lengths, y)


def _check_array(estimator, X, y, reset, input_type, image_layout, sequence_layout,
                 check_params):
    """Validate an array-like of fixed sample shape: (n, L, C) float32, lengths, y.

    Only 3-D sequence arrays may end in all-NaN steps read as padding (lengths); in a
    table or an image a NaN is a missing value.
    """
    X = _as_array_or_frame(X)
    is_uint8 = getattr(X, "dtype", None) == np.uint8
    sample_shape = tuple(X.shape[1:])
    other_length = not reset and _check_sample_shape(estimator, sample_shape,
                                                     input_type, sequence_layout)
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)  # validated as a table, one column per value
    check_params = {"dtype": "numeric", "ensure_min_samples": 1,
                    "ensure_all_finite": "allow-nan", **check_params}
    if other_length:  # sequences of another length: their number of values differs
        target_params = {key: check_params.pop(key) for key in ("multi_output", "y_numeric")
                         if key in check_params}
        X = check_array(X, **check_params)
        no_targets = isinstance(y, str) and y == "no_validation"
        y = None if no_targets else _check_targets(y, len(X), **target_params)
    else:
        validated = validate_data(estimator, X, y, reset=reset, **check_params)
        X, y = validated if isinstance(validated, tuple) else (validated, None)
    if reset:
        estimator.input_shape_ = sample_shape
    X = X.reshape((X.shape[0], *sample_shape))
    is_sequence_array = X.ndim == 3 and input_type != "image"
    if is_sequence_array:
        X = _sequence_axes(X, sequence_layout)
    pixel_scale = _pixel_scale(estimator, X, input_type, is_uint8, reset)
    X = as_sequences(X, input_type, image_layout, estimator.grayscale, pixel_scale != 1)
    X, lengths = _trailing_padding(X) if is_sequence_array else (X, None)
    return X, lengths, y


def _pixel_scale(estimator, X, input_type, is_uint8, reset):
    """What images are divided by: 255 for a model fitted on ``uint8`` pixels, else 1.

    Set at fit (``pixel_scale_``) and kept at predict, so the same pixels give the same
    predictions as ``uint8`` or as floats. A model saved without it scales ``uint8``.
    """
    is_image = input_type == "image" or (input_type == "auto" and X.ndim == 4)
    if reset:
        estimator.pixel_scale_ = 255.0 if is_image and is_uint8 else 1.0
    if is_image:
        _check_pixel_range(estimator, X, reset)
    return getattr(estimator, "pixel_scale_", 255.0 if is_uint8 else 1.0)


def _check_pixel_range(estimator, X, reset):
    """Record the range of the pixels in fit (``pixel_range_``); at predict, refuse
    pixels on another scale: divided by 255 where fit had 0..255, or the reverse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = float(np.nanmin(X)), float(np.nanmax(X))
    if reset:
        estimator.pixel_range_ = (low, high)
        return
    fitted = getattr(estimator, "pixel_range_", None)
    if fitted is None:  # a model saved before the range was recorded
        return
    fitted_low, fitted_high = fitted
    if fitted_high > 1.5 and high <= 1.0 and high > low:
        raise ValueError(f"X holds pixels from {low:g} to {high:g}, but the model was "
                         f"fitted on pixels from {fitted_low:g} to {fitted_high:g}: X looks "
                         f"divided by 255 already; pass the pixels on the scale of fit")
    if fitted_high <= 1.0 and high > 1.5:
        raise ValueError(f"X holds pixels up to {high:g}, but the model was fitted on "
                         f"pixels from {fitted_low:g} to {fitted_high:g}: divide X by 255 "
                         f"as the training images were")
    if fitted_low >= 0 and low < 0:
        raise ValueError(f"X holds negative pixels (down to {low:g}), but the model was "
                         f"fitted on pixels from {fitted_low:g} to {fitted_high:g}")


def _check_file_sequences(estimator, X, y, reset, sequence_layout, check_params):
    """Validate a memmap's shape (not its values, read later) and y: FileSequences."""
    if X.ndim == 3:
        _sequence_axes(X, sequence_layout)  # raises where the layout is ambiguous
    sample_shape = tuple(X.shape[1:])
    if reset:
        estimator.__dict__.pop("feature_names_in_", None)
        estimator.input_shape_ = sample_shape
        estimator.n_features_in_ = int(np.prod(sample_shape))
    else:
        _check_sample_shape(estimator, sample_shape)
    X = FileSequences(X, channels_first=X.ndim == 3 and sequence_layout == "NCL")
    _check_channels(estimator, X.shape[-1], reset)
    if isinstance(y, str) and y == "no_validation":
        return X, None
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    return X, None, _check_targets(y, len(X), **check_params)


def _check_ragged(estimator, X, y, reset, sequence_layout, check_params):
    """Validate a list of per-sample sequences; return them padded (n, L, C) and y."""
    samples = [_numeric_sample(x, i) for i, x in enumerate(X)]
    if not reset:
        _check_rows_of_a_table(estimator, samples)
    if reset:  # no fixed sample shape: forget those of an earlier fit
        for name in ("input_shape_", "n_features_in_", "feature_names_in_", "pixel_scale_",
                     "pixel_range_"):
            estimator.__dict__.pop(name, None)
    if {x.ndim for x in samples} == {2}:
        samples = _ragged_axes(samples, sequence_layout)
    samples = [x[:, None] if x.ndim == 1 else x for x in samples]
    channels = {x.shape[1] for x in samples}
    if len(channels) > 1:
        raise ValueError(f"all sequences must have the same number of channels; got "
                         f"{sorted(channels)[:5]}")
    if y is not None and not (isinstance(y, str) and y == "no_validation"):
        y = _check_targets(y, len(samples), **check_params)
    elif y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    lengths = np.array([len(x) for x in samples])
    padded = np.zeros((len(samples), lengths.max(), channels.pop()), dtype=np.float32)
    for row, x in zip(padded, samples):
        row[:len(x)] = x
    if (lengths == lengths[0]).all():
        lengths = None
    return padded, lengths, (None if isinstance(y, str) else y)


def _check_rows_of_a_table(estimator, samples):
    """ValueError where a model fitted on a table gets rows of other numbers of values."""
    fitted = getattr(estimator, "input_shape_", None)
    if fitted is None or len(fitted) != 1:
        return
    sizes = sorted({x.size for x in samples} - {fitted[0]})
    if sizes:
        raise ValueError(f"X has rows of {sizes[:5]} values, but {type(estimator).__name__} "
                         f"was fitted on a table of {fitted[0]} columns: every row must "
                         f"have {fitted[0]} values")


def _numeric_sample(x, index):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"sequence {index} is not numeric (dtype {x.dtype})")
    if x.ndim not in (1, 2) or len(x) == 0:
        raise ValueError(f"each sequence must be a non-empty array of shape (L,), (L, C) "
                         f"or (C, L); sequence {index} has shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(f"sequence {index} contains infinity")
    return _as_float32(x, f"sequence {index}")


def _ragged_axes(samples, layout):
    """Put 2-D per-sample arrays as (L_i, C), reading the axis that varies as time."""
    if layout == "auto":
        first_varies = len({x.shape[0] for x in samples}) > 1
        second_varies = len({x.shape[1] for x in samples}) > 1
        if first_varies == second_varies:
            raise ValueError(
                f"cannot tell which axis of the sequences is time (shapes such as "
                f"{samples[0].shape}); set layout='NLC' for (length, channels) "
                f"or layout='NCL' for (channels, length) as aeon and sktime do")
        layout = "NCL" if second_varies else "NLC"
    return [x.T if layout == "NCL" else x for x in samples]


def _check_targets(y, n_samples, multi_output=False, y_numeric=False):
    y = check_array(y, ensure_2d=False, dtype="numeric" if y_numeric else None,
                    input_name="y")
    if not multi_output:
        y = column_or_1d(y, warn=True)
    check_consistent_length(np.empty(n_samples), y)
    return y


def _sequence_axes(X, layout):
    """A 3-D array as (n, L, C): moved from (n, C, L) or checked as (n, L, C)."""
    if layout == "NCL":
        return X.transpose(0, 2, 1)
    if layout == "auto" and X.shape[1] < X.shape[2]:
        raise ValueError(
            f"a 3-D array of shape {X.shape} would be read as {X.shape[1]} steps of "
            f"{X.shape[2]} channels; set layout='NCL' if it holds (n, channels, "
            f"length), as aeon and sktime do, or layout='NLC' to read it as "
            f"(n, length, channels)")
    return X


def _trailing_padding(X):
    """Lengths of sequences padded at the end with all-NaN steps, padding zeroed.

    Returns X unchanged and None when no sequence ends in such steps.
    """
    observed = ~np.isnan(X).all(axis=2)  # (n, L): a step with at least one value
    lengths = X.shape[1] - np.argmax(observed[:, ::-1], axis=1)
    lengths[~observed.any(axis=1)] = 0
    if (lengths == 0).any():
        row = int(np.flatnonzero(lengths == 0)[0])
        raise ValueError(f"sequence {row} has no values: every step is NaN")
    if (lengths == X.shape[1]).all():
        return X, None
    steps = np.arange(X.shape[1])
    X = np.where(steps[:, None] >= lengths[:, None, None], np.float32(0), X)
    return X, lengths


def values_per_sample(X):
    """The most values one sample of ``X`` holds (steps times channels), read from its
    shape, or from each sample of a list; None where ``X`` does not say."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 2:
        return int(np.prod(shape[1:]))
    if isinstance(X, (list, tuple)) and len(X) > 0:
        return max(int(np.size(sample)) for sample in X)
    return None


def _check_channels(estimator, channels, reset):
    if reset:
        estimator.n_channels_in_ = channels
    elif channels != estimator.n_channels_in_:
        raise ValueError(f"X has sequences of {channels} channel(s), but "
                         f"{type(estimator).__name__} was fitted on "
                         f"{estimator.n_channels_in_}")


def _check_missing(X, lengths, missing):
    if missing == "mask":
        return
    n_missing = int(np.isnan(X).sum())
    if n_missing:
        total = X.shape[2] * (X.shape[1] * len(X) if lengths is None else lengths.sum())
        raise ValueError(f"X has {n_missing} missing value(s) (NaN) of {total}; set "
                         f"missing='mask' to fill them and give the network an "
                         f"observed/missing indicator per channel, or fill them first")


def _is_ragged(X):
    """A list or tuple of per-sample sequences whose shapes differ."""
    if not isinstance(X, (list, tuple)) or not X or isinstance(X[0], numbers.Number):
        return False
    return len({np.shape(x) for x in X}) > 1


def as_sequences(X, input_type="auto", image_layout="auto", grayscale=False,
                 scale_uint8=None):
    """Reshape a validated numeric array into (n, L, C) float32 sequences.

    Parameters
    ----------
    X : ndarray of shape (n, F), (n, L, C), (n, H, W) or (n, H, W, C) / (n, C, H, W)
    input_type : {"auto", "sequence", "image"}, default="auto"
        "auto" reads 2-D and 3-D arrays as sequences and 4-D arrays as images;
        "image" also reads 3-D arrays as single-channel images (n, H, W).
    image_layout : {"auto", "NHWC", "NCHW"}, default="auto"
        Where the channels of a 4-D image array are; "auto" looks for the axis of
        size 1, 3 or 4.
    grayscale : bool, default=False
        Convert RGB images to one luminance channel.
    scale_uint8 : bool or None, default=None
        Divide pixel values by 255; None means "if X is uint8".
    """
    X = np.asarray(X)
    if scale_uint8 is None:
        scale_uint8 = X.dtype == np.uint8
    is_image = input_type == "image" or (input_type == "auto" and X.ndim == 4)
    if is_image:
        X = _image_pixels(X, image_layout)
        if scale_uint8:
            X = X / np.float32(255)
        if grayscale:
            X = _to_grayscale(X)
    elif grayscale:
        raise ValueError("grayscale=True applies to images; set layout='image' or "
                         "pass a 4-D image array")
    elif X.ndim == 2:
        X = X[:, :, None]
    elif X.ndim != 3:
        raise ValueError(f"expected sequences of shape (n, L) or (n, L, C), got an array "
                         f"of shape {X.shape}; pass images as (n, H, W, C) or (n, C, H, W)")
    return _as_float32(X, "X")


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_float32(X, name):
    """``X`` as contiguous float32; ValueError on finite values too large for float32."""
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(X, dtype=np.float32)
    if X.dtype != np.float32 and np.isinf(converted).any():
        overflow = np.isinf(converted) & np.isfinite(X)
        if overflow.any():
            largest = float(np.abs(np.asarray(X)[overflow]).max())
            raise ValueError(f"{name} has values too large for float32, which s4learn "
                             f"computes in (up to {largest:.3g}; the largest float32 is "
                             f"{FLOAT32_MAX:.3g}); rescale it")
    return converted


COLUMN_SCALE_RATIO = 10  # a table whose largest column std exceeds 10x the median one


def columns_differ_in_scale(X):
    """Whether the columns of a table (n, F, 1) are in different units.

    True when the largest standard deviation of a non-constant column is more than
    ``COLUMN_SCALE_RATIO`` times the median one.
    """
    if isinstance(X, FileSequences):
        std = np.sqrt(X.column_statistics()[1][..., 0])
    else:
        std = np.nanstd(X[..., 0].astype(np.float64), axis=0)  # float32 squares overflow
    std = std[std > 0]
    return bool(std.size) and std.max() > COLUMN_SCALE_RATIO * np.median(std)


def fit_scaling(X, lengths, scaling):
    """Mean and scale that standardise ``X`` (n, L, C) for ``scaling``.

    "column": one mean and scale per step and channel, shape (L, C) (a table's
    columns); "channel": one per channel, shape (C,); "series" and "none": zeros and
    ones of shape (C,) (series are standardised one by one in :func:`apply_scaling`).
    Padding and missing values (NaN) are left out; a constant channel gets scale 1.
    For :class:`~s4learn.ondisk.FileSequences` they come from one pass over the file.
    """
    if isinstance(X, FileSequences):
        return _file_scaling(X, scaling)
    values = _padding_as_nan(X, lengths).astype(np.float64)  # float32 squares overflow
    if scaling == "series":
        values = _standardise_series(values)
    axis = {"column": 0, "channel": (0, 1)}.get(scaling)
    if axis is None:
        return np.zeros(X.shape[-1], np.float32), np.ones(X.shape[-1], np.float32)
    with warnings.catch_warnings():  # a channel with no value at all: mean 0, scale 1
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=axis)
        scale = np.nanstd(values, axis=axis)
    return (np.nan_to_num(mean).astype(np.float32),
            np.where(scale > 0, scale, 1.0).astype(np.float32))


def _file_scaling(X, scaling):
    """:func:`fit_scaling` from the streamed per-column statistics of a file."""
    column_mean, column_var = X.column_statistics()  # (L C) each, over the n sequences
    if scaling == "column":
        mean, var = column_mean, column_var
    elif scaling == "channel":  # the columns pooled: equal counts, so plain averages
        mean = column_mean.mean(axis=0)
        var = (column_var + (column_mean - mean) ** 2).mean(axis=0)
    else:
        return np.zeros(X.shape[-1], np.float32), np.ones(X.shape[-1], np.float32)
    scale = np.sqrt(var)
    return mean.astype(np.float32), np.where(scale > 0, scale, 1.0).astype(np.float32)


def apply_scaling(X, lengths, scaling, mean, scale, missing_indicators=False):
    """Standardised float32 inputs as the network reads them, padding zero.

    With ``missing_indicators`` missing values become 0 and one channel per input
    channel says whether the value was observed (1) or not (0). For
    :class:`~s4learn.ondisk.FileSequences`, a :class:`~s4learn.ondisk.ScaledSequences`
    that scales each sample as it is read.
    """
    if isinstance(X, FileSequences):
        return ScaledSequences(X, functools.partial(
            apply_scaling, lengths=None, scaling=scaling, mean=mean, scale=scale))
    if scaling == "series":
        X = _standardise_series(_padding_as_nan(X, lengths))
    if scaling == "column" and X.shape[1] != len(mean):
        raise ValueError(f"X has sequences of {X.shape[1]} steps, but scaling='column' "
                         f"was fitted on {len(mean)}")
    X = (X - mean) / scale
    if missing_indicators:
        observed = ~np.isnan(X)
        X = np.concatenate([np.nan_to_num(X, nan=0.0), observed], axis=-1)
    if lengths is not None:
        X[np.arange(X.shape[1]) >= lengths[:, None]] = 0.0
    return X.astype(np.float32, copy=False)


class InputScaling:
    """The fitted input transform: sequences as the network reads them.

    Owns the standardisation (``scaling``) and the missing-value indicator channels
    (``missing="mask"``). Fitted on the validated training sequences, it maps any
    batch of validated sequences, in memory or read from a file, to float32 inputs;
    prediction, streaming and export all go through :meth:`transform`.

    Parameters
    ----------
    scaling : {"auto", "column", "channel", "series", "none"}, default="auto"
        As the estimators' parameter of the same name.
    missing : {"error", "mask"}, default="error"
        "mask" adds one observed/missing channel per input channel.

    Attributes
    ----------
    scaling_ : str
        ``scaling`` with "auto" resolved.
    columns_differ_ : bool
        Whether ``fit`` got a table whose columns differ in scale (see
        :func:`columns_differ_in_scale`).
    mean_, scale_ : ndarray
        The learnt standardisation, shape (L, C) for "column", else (C,).
    """

    def __init__(self, scaling="auto", missing="error"):
        self.scaling = scaling
        self.missing = missing

    def fit(self, X, lengths=None, table=False):
        """Learn the scaling of ``X`` (n, L, C); ``table``: X came as a 2-D table."""
        self.columns_differ_ = bool(table) and columns_differ_in_scale(X)
        self.scaling_ = self._resolve_scaling(lengths)
        self.mean_, self.scale_ = fit_scaling(X, lengths, self.scaling_)
        return self

    def _resolve_scaling(self, lengths):
        if self.scaling == "auto":
            return "column" if self.columns_differ_ else "channel"
        if self.scaling == "column" and lengths is not None:
            raise ValueError("scaling='column' needs sequences of one length; use "
                             "scaling='channel' or 'series' for unequal lengths")
        return self.scaling

    @property
    def n_channels_added(self):
        """Channels that :meth:`transform` adds per input channel (missing indicators)."""
        return int(self.missing == "mask")

    @property
    def steps_independent(self):
        """Whether each step is scaled on its own, so that a stream can be scaled."""
        return self.scaling_ in ("channel", "none")

    def transform(self, X, lengths=None):
        """Inputs as the network reads them; ValueError where scaling leaves float32."""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            scaled = apply_scaling(X, lengths, self.scaling_, self.mean_, self.scale_,
                                   missing_indicators=self.missing == "mask")
        if isinstance(scaled, ScaledSequences):  # scaled batch by batch as it is read
            return scaled
        not_finite = ~np.isfinite(scaled)
        if not_finite.any():
            sample = int(np.flatnonzero(not_finite.any(axis=(1, 2)))[0])
            raise ValueError(
                f"X is not finite after the input scaling learnt in fit (sample {sample} "
                f"of this batch overflows float32): its values are far outside the range "
                f"of the training data; check X's units, or rescale it")
        return scaled

    def fitted_state(self):
        """The learnt state as the estimators' attributes name it."""
        return {"scaling_": self.scaling_, "input_mean_": self.mean_,
                "input_scale_": self.scale_}

    @classmethod
    def from_fitted_state(cls, missing, scaling_, input_mean_, input_scale_):
        """The transform whose :meth:`fitted_state` this is (as read from a model file)."""
        transform = cls(scaling_, missing)
        transform.scaling_, transform.mean_, transform.scale_ = (
            scaling_, input_mean_, input_scale_)
        transform.columns_differ_ = False  # used by fit alone
        return transform


def _padding_as_nan(X, lengths):
    if lengths is None:
        return X
    return np.where(np.arange(X.shape[1])[:, None] >= lengths[:, None, None], np.nan, X)


def _standardise_series(X):
    """Each sequence's channels to mean 0 and standard deviation 1 over its own steps,
    computed in float64 (float32 squares overflow above about 1.8e19)."""
    X = X.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X, axis=1, keepdims=True)
        scale = np.nanstd(X, axis=1, keepdims=True)
    return (X - np.nan_to_num(mean)) / np.where(scale > 0, scale, 1.0)


def _image_pixels(X, layout):
    if X.ndim == 3:
        return X.reshape(X.shape[0], -1, 1)
    if X.ndim != 4:
        raise ValueError(f"expected images of shape (n, H, W), (n, H, W, C) or "
                         f"(n, C, H, W), got an array of shape {X.shape}")
    if layout == "auto":
        layout = _guess_layout(X.shape)
    if layout == "NCHW":
        X = X.transpose(0, 2, 3, 1)
    n, H, W, C = X.shape
    return X.reshape(n, H * W, C)


def _guess_layout(shape):
    # the channel axis is the one of size 1, 3 or 4 that is smaller than the other axes
    candidates = {"NHWC": shape[3], "NCHW": shape[1]}
    plausible = {layout: size for layout, size in candidates.items()
                 if size in _IMAGE_CHANNELS and size < min(shape[2], max(shape[1], shape[3]))}
    if len(plausible) == 1:
        return next(iter(plausible))
    if len(plausible) == 2 and candidates["NHWC"] != candidates["NCHW"]:
        return min(plausible, key=plausible.get)
    raise ValueError(f"cannot tell where the channels are in images of shape {shape}; "
                     f"set layout='NHWC' or layout='NCHW'")


def _to_grayscale(X):
    channels = X.shape[-1]
    if channels == 1:
        return X
    if channels != 3:
        raise ValueError(f"grayscale=True needs RGB images (3 channels), got {channels}")
    return (X @ _LUMINANCE)[..., None]


def _as_array_or_frame(X):
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    if isinstance(X, pd.DataFrame):
        _check_numeric_columns(X)
        return X
    if sp.issparse(X):
        return X  # rejected by validate_data with its own message
    return np.asarray(X)


def non_numeric_columns(frame):
    """Names of the columns of the DataFrame ``frame`` that are neither numbers nor bools."""
    return [name for name, dtype in frame.dtypes.items()
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))]


def _check_numeric_columns(frame):
    bad = [str(name) for name in non_numeric_columns(frame)]
    if bad:
        raise ValueError(f"non-numeric column(s) {bad}: encode them as numbers first, for "
                         f"example with OrdinalEncoder or OneHotEncoder in a "
                         f"ColumnTransformer")


def _check_sample_shape(estimator, sample_shape, input_type="auto", sequence_layout="auto"):
    """ValueError where samples of ``sample_shape`` do not fit the model; True where
    they are sequences of another length than in fit (which they may be).

    A table's rows and an image's pixels must be as in fit; a sequence may have any
    number of steps, with the channels it had.
    """
    fitted = getattr(estimator, "input_shape_", None)
    if fitted is None:  # fitted on sequences of unequal lengths
        return False
    if not sample_shape or sample_shape == fitted or max(len(fitted), len(sample_shape)) < 2:
        return False
    time_axis = 1 if sequence_layout == "NCL" else 0
    if len(fitted) == len(sample_shape) == 2 and input_type != "image" and \
            fitted[1 - time_axis] == sample_shape[1 - time_axis]:
        return True
    raise ValueError(f"X has samples of shape {sample_shape}, but "
                     f"{type(estimator).__name__} was fitted on samples of shape "
                     f"{fitted}")
