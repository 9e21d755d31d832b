"""``s4learn predict``: apply a model saved by ``s4learn train`` to new data.

The data are a table, a ``.npy`` array or a data set named as for ``train``, whatever the
model was trained on: a model trained on a table reads the columns it was trained on; any
other model reads samples of the shape it was trained on (one per first-axis entry of an
array, or one per table row, whose columns are the sample's values in order).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from .data import (
    Split,
    check_columns,
    checked_features,
    is_named_dataset,
    is_table,
    load_named_dataset,
    read_table,
)
from .errors import UsageError
from .outputs import load_saved, results_frame, write_table

PIXEL_RANGE = (0, 255)


def predict(args):
    """The ``predict`` command: apply a saved model to new data and write the results."""
    model_path = Path(args.model or Path(args.output_dir) / f"{args.modelname}.safetensors")
    output = Path(args.output_dir) / f"{args.modelname}_predictions.{args.format}"
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise UsageError(f"--output_dir {args.output_dir} is a file, not a folder")
    if output.is_dir():
        raise UsageError(f"{output} is a folder; it cannot be replaced by the predictions")
    if output.exists() and not args.overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    model = load_saved(model_path, "model", allow_pickle=args.allow_pickle)
    if _sample_shape(model) is None:
        raise UsageError(f"{model_path} is not a model written by 's4learn train'")
    samples = _samples(model, args)
    try:
        results = results_frame(model, samples.X, samples.row_id, samples.y,
                                samples.features)
    except ValueError as error:  # data the model cannot read, or far outside its range
        raise UsageError(f"cannot predict {args.dataset} with {model_path}: {error}") \
            from None
    write_table(results, output)
    print(f"Predictions of {len(samples.row_id)} samples written to {output}")
    return 0


def _samples(model, args):
    """The data of ``--dataset`` as the model reads them, with row ids (and labels)."""
    source = args.dataset
    if is_table(source):
        return _table_samples(model, args)
    if args.output_data:
        raise UsageError("--output_data adds the feature columns of a table; "
                         f"{source} is not a table")
    if Path(source).suffix.lower() == ".npy":
        X, y = _read_array(source), None
    elif is_named_dataset(source):
        # a CIFAR-10 model trained on grayscale images reads (32, 32) samples
        grayscale = _sample_shape(model) == (32, 32)
        X, y = load_named_dataset(source, args, "test", grayscale=grayscale)
    else:
        raise UsageError(f"unknown dataset {source!r}: use a .csv/.parquet table, a .npy "
                         f"array, digits, mnist, cifar10 or ucr:NAME")
    if not isinstance(X, list):  # series of different lengths are passed as they are
        X = _as_model_input(model, X, source, from_table=False)
    return Split(X, y, np.arange(len(X)))


def _table_samples(model, args):
    frame = read_table(args.dataset)
    trained_on = _model_features(model)
    if trained_on is None:  # the columns hold the values of each sample in order
        features = args.independent_variables or [str(c) for c in frame.columns]
    else:
        features = args.independent_variables or trained_on
    repeated = sorted({name for name in features if features.count(name) > 1})
    if repeated:
        raise UsageError(f"--independent_variables names {repeated[0]!r} more than once")
    check_columns(frame, features, "--independent_variables")
    if trained_on is not None and set(features) == set(trained_on):
        features = list(trained_on)  # the model's own names: read by name, in its order
    X = checked_features(frame[features])
    if trained_on is None:
        X = _as_model_input(model, X.to_numpy(), args.dataset, from_table=True)
    elif len(features) != len(trained_on):
        raise UsageError(f"the model was trained on {len(trained_on)} features, got "
                         f"{len(features)} --independent_variables")
    else:
        X.columns = trained_on
    extra = frame[features] if args.output_data else None
    return Split(X, None, frame.index.to_numpy(), extra)


def _as_model_input(model, X, source, from_table):
    """``X`` checked against the model's sample shape, reshaped and typed as it was in fit.

    A row of a table is reshaped into one sample; a model trained on a table gets the
    columns named as in fit; a model that reads images gets ``uint8`` pixels, checked to
    be whole numbers from 0 to 255 (the CLI trains on ``uint8`` images).
    """
    shape = _sample_shape(model)
    if from_table:
        if X.shape[1] != np.prod(shape):
            raise UsageError(f"{source}: the model reads samples of shape {shape}, "
                             f"{int(np.prod(shape))} values in all, as table columns in "
                             f"order; got {X.shape[1]} columns")
        X = X.reshape(len(X), *shape)
    elif tuple(X.shape[1:]) != shape:
        raise UsageError(f"{source}: the model reads samples of shape {shape}; got "
                         f"{X.shape[0]} samples of shape {tuple(X.shape[1:])}")
    names = _model_features(model)
    if names is not None:
        return pd.DataFrame(X, columns=names)
    if _reads_images(model):
        return _as_pixels(X, source)
    return X


def _as_pixels(X, source):
    """``uint8`` pixels from pixel values 0..255 of any numeric dtype."""
    if X.dtype == np.uint8:
        return X
    low, high = PIXEL_RANGE
    if not (np.all(np.mod(X, 1) == 0) and X.min() >= low and X.max() <= high):
        raise UsageError(f"{source}: the model reads images, as pixel values from {low} "
                         f"to {high} (whole numbers); got values from {X.min()} to "
                         f"{X.max()}")
    return X.astype(np.uint8)


def _read_array(path):
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UsageError(f"cannot read {path} as a .npy array: {error}") from None


def _estimator(model):
    return model[-1] if isinstance(model, Pipeline) else model


def _sample_shape(model):
    """The shape of one sample the model reads (a --window model: one table row)."""
    if isinstance(model, Pipeline):
        return (model[0].n_features_in_,)
    shape = getattr(model, "input_shape_", None)
    return None if shape is None else tuple(shape)


def _reads_images(model):
    return getattr(_estimator(model), "layout", None) in ("image", "NHWC", "NCHW")


def _model_features(model):
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(name) for name in names]
