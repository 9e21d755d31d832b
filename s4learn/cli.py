"""The ``s4learn`` command: train an S4 model on a data set, or predict with one.

``s4learn train`` fits :class:`S4Classifier` or :class:`S4Regressor` on digits, MNIST,
CIFAR-10 or a ``.csv`` / ``.parquet`` table (from scratch, or by fine-tuning a model saved
by an earlier run) and writes the model, metrics and per-split results;
``s4learn predict`` applies a saved model to a new table. See ``docs/cli.md``.
"""

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.metrics import (accuracy_score, f1_score, mean_absolute_error,
                             mean_squared_error, r2_score)
from sklearn.pipeline import Pipeline

from . import datasets
from .checkpoints import EpochCheckpoint, atomic_dump, load_checkpoint
from .estimators import S4Classifier, S4Regressor
from .peft import LoRA, SDLoRA
from .preprocessing import SequenceWindows

IMAGE_DATASETS = ("digits", "mnist", "cifar10")
SPLITS = ("train", "val", "test")
MAX_CLASSES_OF_INTEGER_TARGET = 20

FINETUNE_METHODS = {"lora": LoRA, "sdlora": SDLoRA}
# settings of each --finetune method, named as the method's parameters (and the flags)
LORA_SETTINGS = ("lora_rank", "ssm_method", "lp_method", "D_method")
SELECTION_SETTINGS = ("select_channels_dim", "updatable_channels_dim", "select_states_dim",
                      "updatable_states_dim", "warmup_epochs", "warmup_lr")
METHOD_SETTINGS = {"full": (), "lora": LORA_SETTINGS,
                   "sdlora": LORA_SETTINGS + SELECTION_SETTINGS}
# options that the pretrained network's architecture replaces
ARCHITECTURE_OPTIONS = ("n_layers", "d_model", "d_state", "prenorm")
# options that may change when a run is resumed: they do not change its result
SETTINGS_FREE_ON_RESUME = ("resume", "overwrite", "quiet", "device", "num_workers",
                           "ignored_options")


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


@dataclass
class Split:
    """One split of the data: model inputs, targets, row ids and the rows' features."""

    X: object
    y: np.ndarray
    row_id: np.ndarray
    features: pd.DataFrame = field(default=None)


# ------------------------------------------------------------------------ entry point
def main(argv=None):
    """Run the ``s4learn`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad input.
    """
    args = build_parser().parse_args(argv)
    check_arguments = getattr(args, "check_arguments", None)
    if check_arguments is not None:
        check_arguments(args)  # parser.error (exit status 2) on a bad combination
    try:
        return args.run(args)
    except (UsageError, FileNotFoundError) as error:
        print(f"s4learn: error: {error}", file=sys.stderr)
        return 2


def build_parser():
    """The argument parser of ``s4learn`` with its ``train`` and ``predict`` commands."""
    parser = argparse.ArgumentParser(prog="s4learn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_arguments(commands.add_parser(
        "train", help="train a model and evaluate it on each split"))
    _add_predict_arguments(commands.add_parser(
        "predict", help="predict a table with a saved model"))
    return parser


def _add_train_arguments(parser):
    parser.set_defaults(run=train,
                        check_arguments=lambda args: _check_finetune_arguments(parser, args))
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="digits (default), mnist, cifar10, or a .csv/.parquet file")
    data.add_argument("--data_root", default="data",
                      help="folder of the MNIST / CIFAR-10 files (default: ./data)")
    data.add_argument("--download", action="store_true",
                      help="download MNIST / CIFAR-10 into --data_root when missing")
    data.add_argument("--task", choices=("classification", "regression"),
                      help="inferred from the target when omitted")
    data.add_argument("--dependent_variable", help="target column of a table")
    data.add_argument("--independent_variables", nargs="+",
                      help="feature columns (default: every other column)")
    data.add_argument("--trainvaltestsplit", nargs=3, type=float, default=(0.7, 0.1, 0.2),
                      metavar=("TRAIN", "VAL", "TEST"),
                      help="shares of the rows in each split, summing to 1")
    data.add_argument("--trainset", help="training table (instead of --dataset)")
    data.add_argument("--valset", help="validation table")
    data.add_argument("--testset", help="test table")
    data.add_argument("--timeseriessplit", action="store_true",
                      help="split into contiguous blocks in file order, not at random")
    data.add_argument("--window", type=int,
                      help="read each row as the sequence of the WINDOW rows ending at it")
    data.add_argument("--grayscale", action="store_true", help="CIFAR-10 in grayscale")
    model = parser.add_argument_group("model and training")
    model.add_argument("--epochs", type=int, default=60, help="max_epochs (default 60)")
    model.add_argument("--lr", type=float, default=0.01)
    model.add_argument("--weight_decay", type=float, default=0.01)
    model.add_argument("--batch_size", type=int, default=64)
    model.add_argument("--num_workers", type=int, default=0)
    model.add_argument("--n_layers", type=int, default=4)
    model.add_argument("--d_model", type=int, default=64)
    model.add_argument("--d_state", type=int, default=64)
    model.add_argument("--dropout", type=float, default=0.1)
    model.add_argument("--prenorm", action="store_true")
    model.add_argument("--patience", type=int, help="early stopping on the validation loss")
    model.add_argument("--device", default="auto")
    model.add_argument("--seed", type=int, default=0, help="random_state and split seed")
    _add_finetune_arguments(parser.add_argument_group(
        "fine-tuning", "start from a model saved by 's4learn train'; its architecture "
        "replaces --n_layers, --d_model, --d_state and --prenorm"))
    output = parser.add_argument_group("output")
    _add_output_arguments(output)
    output.add_argument("--checkpoint_dir", default="s4learn_checkpoints",
                        help="folder of the last and best checkpoints")
    output.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint of --modelname")
    output.add_argument("--quiet", action="store_true", help="print only the metrics")


def _add_finetune_arguments(group):
    lora, sdlora = LoRA(), SDLoRA()
    group.add_argument("--pretrained", metavar="MODEL",
                       help="model file (NAME.joblib) written by 's4learn train' to start from")
    group.add_argument("--finetune", choices=("full", "lora", "sdlora"),
                       help="full: train every parameter (default with --pretrained); "
                            "lora: LoRA adapters; sdlora: selective dimension tuning of "
                            "the SSM plus LoRA")
    group.add_argument("--ssm_method", choices=("full", "freeze", "lora", "sdlora"),
                       help=f"how the SSM parameters (dt, A, C) train (default: "
                            f"{lora.ssm_method} with lora, {sdlora.ssm_method} with sdlora)")
    group.add_argument("--lp_method", choices=("full", "freeze", "lora"),
                       help=f"how the linear projections train (default: {lora.lp_method})")
    group.add_argument("--D_method", choices=("full", "freeze"),
                       help=f"whether the skip parameters D train (default: "
                            f"{lora.D_method} with lora, {sdlora.D_method} with sdlora)")
    for dim, total in (("states", "of d_state/2"), ("channels", "of d_model")):
        group.add_argument(f"--select_{dim}_dim", type=_dimension, metavar="N",
                           help=f"sdlora: {dim} kept per "
                                f"{'channel' if dim == 'states' else 'layer'}, an int count "
                                f"{total} or a float share in (0, 1] (default: all)")
        group.add_argument(f"--updatable_{dim}_dim", type=_dimension, metavar="N",
                           help=f"sdlora: kept {dim} whose A and C train, a count or share "
                                f"(default: {getattr(sdlora, f'updatable_{dim}_dim')})")
    group.add_argument("--lora_rank", type=int,
                       help=f"rank of the LoRA adapters (default: {lora.lora_rank})")
    group.add_argument("--warmup_epochs", type=int,
                       help=f"sdlora: epochs of the warmup run that ranks the dimensions "
                            f"(default: {sdlora.warmup_epochs})")
    group.add_argument("--warmup_lr", type=float,
                       help=f"sdlora: learning rate of the warmup run "
                            f"(default: {sdlora.warmup_lr})")


def _dimension(text):
    """An int count (``"8"``) or a float share in (0, 1] (``"0.25"``)."""
    try:
        value = int(text)
    except ValueError:
        pass
    else:
        if value < 0:
            raise argparse.ArgumentTypeError(f"a count must be >= 0, got {text!r}")
        return value
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an int count nor a float share in (0, 1]") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"a share must be a float in (0, 1], got {text!r} (or give an int count)")
    return value


def _check_finetune_arguments(parser, args):
    """parser.error on fine-tuning options that do not fit together; settles --finetune."""
    given = [name for name in METHOD_SETTINGS["sdlora"] if getattr(args, name) is not None]
    if args.pretrained is None:
        if args.finetune is not None:
            parser.error(f"--finetune {args.finetune} needs --pretrained MODEL (the model "
                         f"to fine-tune)")
        if given:
            parser.error(f"--{given[0]} is a fine-tuning setting: it needs --pretrained "
                         f"MODEL and --finetune lora or sdlora")
        return
    args.finetune = args.finetune or "full"
    args.ignored_options = [f"--{name}" for name in ARCHITECTURE_OPTIONS
                            if getattr(args, name) != parser.get_default(name)]
    for name in given:
        if name not in METHOD_SETTINGS[args.finetune]:
            if args.finetune == "full":
                parser.error(f"--{name} does not apply to --finetune full (full fine-tuning "
                             f"trains every parameter and has no settings); use --finetune "
                             f"lora or sdlora")
            parser.error(f"--{name} does not apply to --finetune {args.finetune}; it is a "
                         f"setting of --finetune sdlora")
    if args.finetune == "lora" and args.ssm_method == "sdlora":
        parser.error("--ssm_method sdlora needs --finetune sdlora")
    if args.finetune == "sdlora" and args.ssm_method not in (None, "sdlora"):
        selection = [name for name in given if name in SELECTION_SETTINGS]
        if selection:
            parser.error(f"--{selection[0]} applies only with --ssm_method sdlora (it sets "
                         f"the dimension selection), not with --ssm_method {args.ssm_method}")


def _add_predict_arguments(parser):
    parser.set_defaults(run=predict)
    parser.add_argument("--model", help="model file (default: OUTPUT_DIR/MODELNAME.joblib)")
    parser.add_argument("--dataset", required=True, help=".csv or .parquet table")
    parser.add_argument("--independent_variables", nargs="+",
                        help="feature columns (default: those the model was trained on)")
    _add_output_arguments(parser)


def _add_output_arguments(parser):
    parser.add_argument("--modelname", default="s4model",
                        help="name of every file written (default: s4model)")
    parser.add_argument("--output_dir", default="s4learn_runs",
                        help="folder of the model and results (default: ./s4learn_runs)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="format of the results files")
    parser.add_argument("--output_data", action="store_true",
                        help="add the input features to the results files")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")


# ------------------------------------------------------------------------------ train
def train(args):
    """The ``train`` command: load, split, fit, evaluate and save."""
    _check_train_arguments(args)
    paths = _train_paths(args)
    _check_free(paths, args, resuming=args.resume)
    checkpoint = _checkpoint_to_resume(paths["last"], args) if args.resume else None
    pretrained = _load_pretrained(args.pretrained) if args.pretrained else None
    splits, task = _load_splits(args)
    estimator = _make_estimator(args, task, paths, pretrained)
    _fit(estimator, splits, args, checkpoint)
    n_trainable, n_params = estimator.n_trainable_params_, estimator.n_params_
    if args.pretrained:
        estimator.merge()  # plain weights: the saved model predicts at the base speed
        # a path, not a copy of the pretrained model inside the file
        estimator.set_params(pretrained=str(args.pretrained))
    model = estimator
    if args.window:
        windows = SequenceWindows(args.window).fit(splits["train"].features)
        model = Pipeline([("windows", windows), ("model", estimator)])
    metrics = {name: _evaluate(estimator, split, task) for name, split in splits.items()}
    for name, split in splits.items():
        _write_results(estimator, split, args, paths[f"{name}_results"])
    summary = {"task": task, "n_epochs": int(estimator.n_epochs_), "n_params": n_params,
               "n_trainable_params": n_trainable}
    if args.pretrained:
        summary.update(pretrained=str(args.pretrained), finetune=args.finetune)
    summary.update(metrics)
    _write_json(summary, paths["metrics"])
    atomic_dump(model, paths["model"])
    _report(metrics, paths, args, (n_trainable, n_params))
    return 0


def _check_train_arguments(args):
    ratios = args.trainvaltestsplit
    if any(ratio < 0 for ratio in ratios) or ratios[0] <= 0:
        raise UsageError(f"--trainvaltestsplit shares must be >= 0 with a positive "
                         f"training share, got {ratios}")
    if not np.isclose(sum(ratios), 1.0):
        raise UsageError(f"--trainvaltestsplit shares must sum to 1, got {ratios} "
                         f"(sum {sum(ratios):g})")
    if args.window is not None and args.window < 1:
        raise UsageError(f"--window must be a positive integer, got {args.window}")
    if args.epochs < 1:
        raise UsageError(f"--epochs must be a positive integer, got {args.epochs}")
    if not args.trainset and (args.valset or args.testset):
        raise UsageError("--valset and --testset need --trainset")
    dataset = args.trainset or args.dataset
    is_table = Path(dataset).suffix.lower() in datasets.TABLE_SUFFIXES
    if not is_table and dataset not in IMAGE_DATASETS:
        close = difflib.get_close_matches(dataset, IMAGE_DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown dataset {dataset!r}: use digits, mnist, cifar10 or a "
                         f".csv/.parquet file{hint}")
    if not is_table and args.window:
        raise UsageError("--window applies to tables (.csv/.parquet), not to images")


def _train_paths(args):
    output, name = Path(args.output_dir), args.modelname
    paths = {"model": output / f"{name}.joblib", "metrics": output / f"{name}_metrics.json",
             "last": Path(args.checkpoint_dir) / f"{name}_last.joblib",
             "best": Path(args.checkpoint_dir) / f"{name}_best.joblib"}
    for split in SPLITS:
        paths[f"{split}_results"] = output / f"{name}_{split}_results.{args.format}"
    return paths


def run_settings(args):
    """The options of a ``train`` run that a resumed run must repeat, as plain values."""
    return {name: str(value) if isinstance(value, Path) else value
            for name, value in sorted(vars(args).items())
            if name not in SETTINGS_FREE_ON_RESUME and not callable(value)}


def _checkpoint_to_resume(path, args):
    """The checkpoint at ``path``, if it was written by a run with the same settings."""
    checkpoint = _load(path, "checkpoint")
    saved = checkpoint.get("settings")
    if saved is not None:  # written by a run of this command
        current = run_settings(args)
        changed = [f"--{name} {_format_setting(saved.get(name))} "
                   f"(now {_format_setting(current[name])})"
                   for name in current if saved.get(name) != current[name]]
        if changed:
            raise UsageError(f"--resume: {path} was written by a run with "
                             f"{', '.join(changed)}; resume with the same options, or "
                             f"start anew with --overwrite")
    if not args.quiet:
        print(f"Resuming from {path} after epoch {checkpoint['epoch']}")
    return checkpoint


def _format_setting(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _check_free(paths, args, resuming=False):
    if resuming and not paths["last"].is_file():
        raise UsageError(f"--resume: no checkpoint {paths['last']} to resume from")
    if args.overwrite:
        return
    names = [key for key in paths if not (resuming and key in ("last", "best"))]
    existing = [str(paths[key]) for key in names if paths[key].exists()]
    if existing:
        hint = "; use --resume to continue it" if paths["last"].exists() else ""
        raise UsageError(f"{existing[0]} exists; pass --overwrite to replace it, or choose "
                         f"another --modelname{hint}")


# ------------------------------------------------------------------------------ data
def _load_splits(args):
    if args.trainset:
        return _load_table_files(args)
    if args.dataset in IMAGE_DATASETS:
        return _load_images(args), "classification"
    frame = _read_table(args.dataset)
    X, y, task = _table_columns(frame, args)
    return _split_table(X, y, frame, args), task


def _load_images(args):
    if args.dataset == "digits":
        X, y = datasets.load_digits_images()
        return _split_arrays(X, y, args.trainvaltestsplit, args.timeseriessplit, args.seed)
    load = {"mnist": datasets.load_mnist, "cifar10": datasets.load_cifar10}[args.dataset]
    options = {"grayscale": args.grayscale} if args.dataset == "cifar10" else {}
    X, y = load(args.data_root, train=True, download=args.download, **options)
    X_test, y_test = load(args.data_root, train=False, download=args.download, **options)
    train_share, val_share, _ = args.trainvaltestsplit
    splits = _split_arrays(X, y, (train_share, val_share, 0.0), args.timeseriessplit,
                           args.seed, normalise=True)
    splits["test"] = Split(X_test, y_test, np.arange(len(y_test)))
    return splits


def _split_arrays(X, y, ratios, in_order, seed, normalise=False):
    ratios = np.asarray(ratios, dtype=float)
    if normalise:
        ratios = ratios / ratios.sum()
    order = np.arange(len(y)) if in_order else np.random.RandomState(seed).permutation(len(y))
    bounds = np.rint(np.cumsum(ratios)[:-1] * len(y)).astype(int)
    splits = {}
    for name, rows in zip(SPLITS, np.split(order, bounds)):
        if len(rows):
            splits[name] = Split(X[rows], y[rows], rows)
    return splits


def _read_table(path):
    try:
        return datasets.load_table(path)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _table_columns(frame, args, task=None):
    """Features, target and task of a table, checked."""
    target = args.dependent_variable
    if target is None:
        raise UsageError("tables need --dependent_variable (the target column)")
    _check_columns(frame, [target], "--dependent_variable")
    features = args.independent_variables or [c for c in frame.columns if c != target]
    _check_columns(frame, features, "--independent_variables")
    if target in features:
        raise UsageError(f"the target {target!r} is also among the features")
    X = _checked_features(frame[features])
    y = frame[target]
    if y.isna().any():
        rows = frame.index[y.isna()][:5].tolist()
        raise UsageError(f"target column {target!r} has {int(y.isna().sum())} missing "
                         f"value(s), e.g. in rows {rows}; drop or fill them first")
    task = task or args.task or _infer_task(y)
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise UsageError(f"regression needs a numeric target; {target!r} is not numeric")
    return X, y.to_numpy(), task


def _check_columns(frame, names, option):
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UsageError(f"{option}: no column {name!r} in the data{hint}")


def _checked_features(X):
    for name, column in X.items():
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            raise UsageError(
                f"feature column {name!r} is not numeric (e.g. {column.iloc[0]!r}); encode "
                f"it as numbers first (one 0/1 column per category, or category codes), "
                f"or leave it out with --independent_variables")
        if column.isna().any():
            raise UsageError(f"feature column {name!r} has {int(column.isna().sum())} "
                             f"missing value(s); drop or fill them first")
    return X.astype(np.float32)


def _infer_task(y):
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    integer = numeric and np.all(np.mod(y.to_numpy(dtype=float), 1) == 0)
    few = y.nunique() <= MAX_CLASSES_OF_INTEGER_TARGET
    task = "regression" if numeric and not (integer and few) else "classification"
    reason = ("non-numeric labels" if not numeric else
              f"{y.nunique()} distinct integer values" if task == "classification" else
              "numeric values")
    print(f"Task inferred from the target: {task} ({reason}); set --task to change it")
    return task


def _split_table(X, y, frame, args):
    if args.window:
        X = SequenceWindows(args.window).fit_transform(X)
    splits = _split_arrays(np.asarray(X) if args.window else X.to_numpy(), y,
                           args.trainvaltestsplit, args.timeseriessplit, args.seed)
    features = frame[_feature_names(frame, args)]
    for split in splits.values():
        split.row_id = frame.index.to_numpy()[split.row_id]
        split.features = features.loc[split.row_id]
        if not args.window:
            split.X = split.features.astype(np.float32)
    return splits


def _feature_names(frame, args):
    return args.independent_variables or [c for c in frame.columns
                                          if c != args.dependent_variable]


def _load_table_files(args):
    frames = {"train": args.trainset, "val": args.valset, "test": args.testset}
    frames = {name: _read_table(path) for name, path in frames.items() if path}
    X, y, task = _table_columns(frames["train"], args)
    splits = {}
    for name, frame in frames.items():
        X, y, _ = _table_columns(frame, args, task=task)
        if args.window:
            X = SequenceWindows(args.window).fit_transform(X)
        split = Split(X, y, frame.index.to_numpy(), frame[list(_feature_names(frame, args))])
        splits[name] = split
    return splits, task


# ---------------------------------------------------------------------------- fitting
def _load_pretrained(path):
    """The estimator saved in ``path`` by ``s4learn train`` (unwrapped from its Pipeline)."""
    model = _load(path, "pretrained model")
    estimator = model[-1] if isinstance(model, Pipeline) else model
    if not (isinstance(estimator, (S4Classifier, S4Regressor)) and hasattr(estimator, "net_")):
        raise UsageError(f"--pretrained: {path} is not a model saved by 's4learn train'")
    return model, estimator


def _finetune_method(args):
    """The s4learn.peft method of ``--finetune`` with the settings given; None for full."""
    if args.finetune in (None, "full"):
        return None
    settings = {name: getattr(args, name) for name in METHOD_SETTINGS[args.finetune]
                if getattr(args, name) is not None}  # the others keep the method's defaults
    return FINETUNE_METHODS[args.finetune](**settings)


def _make_estimator(args, task, paths, pretrained=None):
    estimator_class = S4Classifier if task == "classification" else S4Regressor
    is_image = (args.trainset or args.dataset) in IMAGE_DATASETS
    checkpoint = EpochCheckpoint(paths["last"], paths["best"], settings=run_settings(args))
    finetuning = {}
    if pretrained is not None:
        _, estimator = pretrained  # a --window Pipeline unwrapped
        finetuning = {"pretrained": estimator,
                      "finetune": _finetune_method(args)}
        _note_finetuning(args, finetuning["finetune"])
    return estimator_class(
        d_model=args.d_model, n_layers=args.n_layers, d_state=args.d_state,
        dropout=args.dropout, prenorm=args.prenorm, lr=args.lr,
        weight_decay=args.weight_decay, batch_size=args.batch_size, max_epochs=args.epochs,
        patience=args.patience, input_type="image" if is_image else "auto",
        grayscale=False, num_workers=args.num_workers, device=args.device,
        random_state=args.seed, verbose=0 if args.quiet else 1,
        callbacks=[("checkpoint", checkpoint)], **finetuning)


def _note_finetuning(args, method):
    if args.quiet:
        return
    ignored = getattr(args, "ignored_options", [])
    if ignored:
        print(f"Note: {', '.join(ignored)} ignored: the architecture is that of "
              f"{args.pretrained}")
    print(f"Fine-tuning {args.pretrained}: "
          f"{'every parameter (full)' if method is None else method}")


def _fit(estimator, splits, args, checkpoint=None):
    train, val = splits["train"], splits.get("val")
    validation = (val.X, val.y) if val is not None else None
    try:
        if checkpoint is not None:
            estimator._resume_fit(train.X, train.y, checkpoint["net"],
                                  checkpoint["torch_rng_state"], validation_data=validation)
        else:
            estimator.fit(train.X, train.y, validation_data=validation)
    except ValueError as error:
        if not args.pretrained:
            raise
        # bad fine-tuning settings for this model, or data that do not fit it
        raise UsageError(f"cannot fine-tune {args.pretrained}: {error}") from None


# ------------------------------------------------------------------------- evaluation
def _evaluate(estimator, split, task):
    y_pred = estimator.predict(split.X)
    if task == "classification":
        return {"accuracy": float(accuracy_score(split.y, y_pred)),
                "f1_macro": float(f1_score(split.y, y_pred, average="macro"))}
    return {"rmse": float(np.sqrt(mean_squared_error(split.y, y_pred))),
            "mae": float(mean_absolute_error(split.y, y_pred)),
            "r2": float(r2_score(split.y, y_pred))}


def _results_frame(model, X, row_id, y_true=None, features=None):
    """Row ids, true targets (when known), predictions and class probabilities."""
    results = pd.DataFrame({"row_id": row_id})
    if y_true is not None:
        results["y_true"] = y_true
    results["y_pred"] = model.predict(X)
    if is_classifier(model):
        proba = model.predict_proba(X)
        for column, label in enumerate(model.classes_):
            results[f"proba_{label}"] = proba[:, column]
    if features is not None:
        results = pd.concat([results, features.reset_index(drop=True)], axis=1)
    return results


def _write_results(estimator, split, args, path):
    features = split.features if args.output_data else None
    results = _results_frame(estimator, split.X, split.row_id, split.y, features)
    _write_table(results, path)


def _write_table(frame, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _write_json(value, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def _report(metrics, paths, args, counts):
    n_trainable, n_params = counts
    if args.pretrained and not args.quiet:
        print(f"trainable parameters: {n_trainable} of {n_params} "
              f"({100 * n_trainable / n_params:.1f}%)")
    elif not args.quiet:
        print(f"parameters: {n_params}")
    for split, values in metrics.items():
        scores = "  ".join(f"{name} {value:.4f}" for name, value in values.items())
        print(f"{split:5s}  {scores}")
    print(f"Model saved to {paths['model']}; metrics and results in {paths['model'].parent}")


# ---------------------------------------------------------------------------- predict
def predict(args):
    """The ``predict`` command: apply a saved model to a table and write the results."""
    model_path = Path(args.model or Path(args.output_dir) / f"{args.modelname}.joblib")
    output = Path(args.output_dir) / f"{args.modelname}_predictions.{args.format}"
    if output.exists() and not args.overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    model = _load(model_path, "model")
    frame = _read_table(args.dataset)
    features = args.independent_variables or _model_features(model, model_path)
    _check_columns(frame, features, "--independent_variables")
    X = _checked_features(frame[features])
    trained_on = _model_features(model, model_path)
    if len(features) != len(trained_on):
        raise UsageError(f"the model was trained on {len(trained_on)} features, got "
                         f"{len(features)} --independent_variables")
    X.columns = trained_on
    extra = frame[features] if args.output_data else None
    _write_table(_results_frame(model, X, frame.index.to_numpy(), features=extra), output)
    print(f"Predictions of {len(frame)} rows written to {output}")
    return 0


def _load(path, what):
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file {path} not found")
    try:
        value = joblib.load(path)
    except Exception as error:  # unpickling a damaged file raises many error types
        raise UsageError(f"cannot read {what} file {path} ({type(error).__name__}); it is "
                         f"damaged or not an s4learn {what}") from None
    expected = dict if what == "checkpoint" else object
    if not isinstance(value, expected) or (what == "model" and not hasattr(value, "predict")):
        raise UsageError(f"{path} is not an s4learn {what}")
    return value


def _model_features(model, path):
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise UsageError(f"{path} was not trained on a table; pass --independent_variables")
    return [str(name) for name in names]
