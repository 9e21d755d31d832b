"""Every accepted input -> sequences of shape (n_samples, length, channels), float32.

Accepted inputs:

- a DataFrame or 2-D array ``(n, F)``: each row is a sequence of F steps, one channel;
- a 3-D array ``(n, L, C)``: L steps of C channels;
- images: 4-D ``(n, H, W, C)`` or ``(n, C, H, W)``, or 3-D ``(n, H, W)`` with
  ``input_type="image"``, read row-major into H*W steps of C channels (sequential
  MNIST/CIFAR); ``uint8`` pixels are scaled to [0, 1];
- torch tensors and lists of equal-length sequences wherever arrays are accepted.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils.validation import validate_data

INPUT_TYPES = ("auto", "sequence", "image")
IMAGE_LAYOUTS = ("auto", "NHWC", "NCHW")
_IMAGE_CHANNELS = (1, 3, 4)
_LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


def check_sequences(estimator, X, y="no_validation", *, reset, **check_params):
    """Validate ``X`` (and ``y``) for ``estimator`` and shape ``X`` as (n, L, C) float32.

    With ``reset=True`` the per-sample input shape, ``n_features_in_`` (values per
    sample) and, for DataFrames, ``feature_names_in_`` are recorded on the estimator;
    with ``reset=False`` they are checked against what was recorded. The estimator's
    ``input_type``, ``image_layout`` and ``grayscale`` parameters say how to read X.

    Returns
    -------
    X : ndarray of shape (n_samples, length, channels), float32
    y : validated ``y``, when ``y`` is given (``y=None`` is an error: fit needs targets)
    """
    X = _as_array_or_frame(X)
    input_type = _check_choice("input_type", estimator.input_type, INPUT_TYPES)
    layout = _check_choice("image_layout", estimator.image_layout, IMAGE_LAYOUTS)
    is_uint8 = getattr(X, "dtype", None) == np.uint8
    sample_shape = tuple(X.shape[1:])
    if not reset:
        _check_sample_shape(estimator, sample_shape)
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)  # validated as a table, one column per value
    check_params = {"dtype": "numeric", "ensure_min_samples": 1, **check_params}
    validated = validate_data(estimator, X, y, reset=reset, **check_params)
    X, y = validated if isinstance(validated, tuple) else (validated, None)
    if reset:
        estimator.input_shape_ = sample_shape
    X = X.reshape((X.shape[0], *sample_shape))
    sequences = as_sequences(X, input_type, layout, estimator.grayscale, is_uint8)
    return sequences if y is None else (sequences, y)


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
        raise ValueError("grayscale=True applies to images; set input_type='image' or "
                         "pass a 4-D image array")
    elif X.ndim == 2:
        X = X[:, :, None]
    elif X.ndim != 3:
        raise ValueError(f"expected sequences of shape (n, L) or (n, L, C), got an array "
                         f"of shape {X.shape}; pass images as (n, H, W, C) or (n, C, H, W)")
    return np.ascontiguousarray(X, dtype=np.float32)


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
                     f"set image_layout='NHWC' or image_layout='NCHW'")


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
    if isinstance(X, (list, tuple)) and X and not isinstance(X[0], numbers.Number):
        lengths = {len(x) for x in X if hasattr(x, "__len__")}
        if len(lengths) > 1:
            raise ValueError(f"all sequences must have the same length; got lengths "
                             f"{sorted(lengths)[:5]}. Pad or crop them to one length first")
    return np.asarray(X)


def _check_numeric_columns(frame):
    bad = [str(name) for name, dtype in frame.dtypes.items()
           if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))]
    if bad:
        raise ValueError(f"non-numeric column(s) {bad}: encode them as numbers first, for "
                         f"example with OrdinalEncoder or OneHotEncoder in a "
                         f"ColumnTransformer")


def _check_sample_shape(estimator, sample_shape):
    fitted = estimator.input_shape_
    if sample_shape and sample_shape != fitted and max(len(fitted), len(sample_shape)) > 1:
        raise ValueError(f"X has samples of shape {sample_shape}, but "
                         f"{type(estimator).__name__} was fitted on samples of shape "
                         f"{fitted}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
