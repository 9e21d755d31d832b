"""The data of a run: tables, images and archives, read, checked and split."""

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import datasets
from ..inputs import non_numeric_columns
from ..preprocessing import SequenceWindows
from .errors import UsageError

IMAGE_DATASETS = ("digits", "mnist", "cifar10")
UCR_PREFIX = "ucr:"
SPLITS = ("train", "val", "test")
MAX_CLASSES_OF_INTEGER_TARGET = 20


@dataclass
class Split:
    """One split of the data: model inputs, targets, row ids and the rows' features."""

    X: object
    y: np.ndarray
    row_id: np.ndarray
    features: pd.DataFrame = field(default=None)


def is_table(path):
    return Path(path).suffix.lower() in datasets.TABLE_SUFFIXES


def check_dataset(args):
    """UsageError unless ``--dataset`` / ``--train_set`` names data that train can read."""
    dataset = args.trainset or args.dataset
    if not (is_table(dataset) or is_named_dataset(dataset)):
        close = difflib.get_close_matches(dataset, IMAGE_DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown dataset {dataset!r}: use digits, mnist, cifar10, "
                         f"ucr:NAME or a .csv/.parquet file{hint}")
    if not is_table(dataset):
        for flag in ("tabulardata", "window"):
            if getattr(args, flag):
                raise UsageError(f"--{flag} applies to tables (.csv/.parquet), not to "
                                 f"{dataset}")


def is_named_dataset(name):
    """Whether ``name`` is digits, mnist, cifar10 or ``ucr:NAME``."""
    return name in IMAGE_DATASETS or (name.startswith(UCR_PREFIX) and len(name) > 4)


def load_splits(args):
    """The splits of the run's data and its task ("classification" or "regression")."""
    if args.trainset:
        return _load_table_files(args)
    if is_named_dataset(args.dataset):
        return _split_named_dataset(args), "classification"
    frame = read_table(args.dataset)
    X, y, task = table_columns(frame, args)
    return _split_table(X, y, frame, args), task


def _split_named_dataset(args):
    if args.dataset == "digits":
        X, y = datasets.load_digits_images()
        return split_arrays(X, y, args.trainvaltestsplit, args.timeseriessplit,
                            args.random_state)
    X, y = load_named_dataset(args.dataset, args, "train")
    X_test, y_test = load_named_dataset(args.dataset, args, "test")
    train_share, val_share, _ = args.trainvaltestsplit
    splits = split_arrays(X, y, (train_share, val_share, 0.0), args.timeseriessplit,
                          args.random_state, normalise=True)
    splits["test"] = Split(X_test, y_test, np.arange(len(y_test)))
    return splits


def load_named_dataset(name, args, split, grayscale=None):
    """Samples and labels of a split ("train" or "test") of digits, MNIST, CIFAR-10 or
    a UCR/UEA archive data set (``ucr:NAME``); digits has one split, all its images.

    ``grayscale`` (default: ``args.grayscale``) converts CIFAR-10 to one channel.
    """
    if name == "digits":
        return datasets.load_digits_images()
    if name.startswith(UCR_PREFIX):
        try:
            return datasets.load_ucr(name[len(UCR_PREFIX):], split)
        except (ImportError, ValueError, OSError) as error:
            raise UsageError(f"{name}: {error}") from None
    load = {"mnist": datasets.load_mnist, "cifar10": datasets.load_cifar10}[name]
    options = {}
    if name == "cifar10":
        options["grayscale"] = args.grayscale if grayscale is None else grayscale
    return load(args.data_root, train=split == "train", download=args.download, **options)


def split_arrays(X, y, ratios, in_order, seed, normalise=False):
    """Splits of ``X`` and ``y`` by the shares ``ratios``, in order or shuffled by ``seed``.

    ``X`` is an array, or a list of sequences of different lengths.
    """
    ratios = np.asarray(ratios, dtype=float)
    if normalise:
        ratios = ratios / ratios.sum()
    order = np.arange(len(y)) if in_order else np.random.RandomState(seed).permutation(len(y))
    bounds = np.rint(np.cumsum(ratios)[:-1] * len(y)).astype(int)
    splits = {}
    for name, rows in zip(SPLITS, np.split(order, bounds)):
        if len(rows):
            samples = [X[row] for row in rows] if isinstance(X, list) else X[rows]
            splits[name] = Split(samples, y[rows], rows)
    return splits


def read_table(path):
    """The table at ``path``; UsageError when it is not a readable .csv/.parquet file."""
    try:
        return datasets.load_table(path)
    except ValueError as error:
        raise UsageError(str(error)) from None


def table_columns(frame, args, task=None, features=None, option="--independent_variables"):
    """Features, target and task of a table, checked; ``features``: the columns that
    must be there (those of the training table), named by ``option`` if one is missing."""
    target = args.dependent_variable
    if target is None:
        raise UsageError("tables need --dependent_variable (the target column)")
    check_columns(frame, [target], "--dependent_variable")
    features = feature_names(frame, args) if features is None else features
    check_columns(frame, features, option)
    if target in features:
        raise UsageError(f"the target {target!r} is also among the features")
    X = checked_features(frame[features])
    y = frame[target]
    if y.isna().any():
        rows = frame.index[y.isna()][:5].tolist()
        raise UsageError(f"target column {target!r} has {int(y.isna().sum())} missing "
                         f"value(s), e.g. in rows {rows}; drop or fill them first")
    task = task or args.task or _infer_task(y, quiet=args.quiet)
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise UsageError(f"regression needs a numeric target; {target!r} is not numeric")
    return X, y.to_numpy(), task


def check_columns(frame, names, option):
    """UsageError naming the closest columns when one of ``names`` is not in ``frame``."""
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UsageError(f"{option}: no column {name!r} in the data{hint}")


FLOAT32_MAX = float(np.finfo(np.float32).max)


def checked_features(X):
    """The feature columns as float32; UsageError on a non-numeric or incomplete column,
    or on a value that float32 cannot hold (infinite, or beyond about 3.4e38)."""
    not_numeric = non_numeric_columns(X)
    if not_numeric:
        name = not_numeric[0]
        raise UsageError(
            f"feature column {name!r} is not numeric (e.g. {X[name].iloc[0]!r}); encode "
            f"it as numbers first (one 0/1 column per category, or category codes), "
            f"or leave it out with --independent_variables")
    for name, column in X.items():
        if column.isna().any():
            raise UsageError(f"feature column {name!r} has {int(column.isna().sum())} "
                             f"missing value(s); drop or fill them first")
        too_large = np.abs(column.to_numpy(dtype=np.float64)) > FLOAT32_MAX
        if too_large.any():
            row = X.index[too_large][0]
            raise UsageError(f"feature column {name!r} has {int(too_large.sum())} value(s) "
                             f"too large for float32 (e.g. {float(column[row]):g} in row "
                             f"{row!r}), the precision s4learn computes in; rescale or drop "
                             f"them")
    return X.astype(np.float32)


def _infer_task(y, quiet):
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    integer = numeric and np.all(np.mod(y.to_numpy(dtype=float), 1) == 0)
    few = y.nunique() <= MAX_CLASSES_OF_INTEGER_TARGET
    task = "regression" if numeric and not (integer and few) else "classification"
    reason = ("non-numeric labels" if not numeric else
              f"{y.nunique()} distinct integer values" if task == "classification" else
              "numeric values")
    if not quiet:
        print(f"Task inferred from the target: {task} ({reason}); set --task to change it")
    return task


def _split_table(X, y, frame, args):
    if args.window:
        X = SequenceWindows(args.window).fit_transform(X)
    splits = split_arrays(np.asarray(X) if args.window else X.to_numpy(), y,
                          args.trainvaltestsplit, args.timeseriessplit, args.random_state)
    features = frame[feature_names(frame, args)]
    for split in splits.values():
        split.row_id = frame.index.to_numpy()[split.row_id]
        split.features = features.loc[split.row_id]
        if not args.window:
            split.X = split.features.astype(np.float32)
    return splits


def feature_names(frame, args):
    """``--independent_variables``, or every column but the target."""
    return args.independent_variables or [c for c in frame.columns
                                          if c != args.dependent_variable]


def _load_table_files(args):
    frames = {"train": args.trainset, "val": args.valset, "test": args.testset}
    frames = {name: read_table(path) for name, path in frames.items() if path}
    task = features = None  # from the training table, then imposed on the others
    splits = {}
    for name, frame in frames.items():  # the training table first
        option = "--independent_variables" if features is None else f"--{name}_set"
        X, y, task = table_columns(frame, args, task=task, features=features, option=option)
        features = list(X.columns)
        if args.window:
            X = SequenceWindows(args.window).fit_transform(X)
        splits[name] = Split(X, y, frame.index.to_numpy(), frame[features])
    return splits, task
