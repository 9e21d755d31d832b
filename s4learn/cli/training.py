"""``s4learn train``: load and split the data, fit, evaluate, save; checkpoints and resume."""

import hashlib
import os
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from ..checkpoints import EpochCheckpoint, remove_stale_temporaries
from ..estimators import S4Classifier, S4Regressor
from ..extras import import_extra
from ..peft import LoRA, SDLoRA
from ..persistence import save_model
from ..preprocessing import SequenceWindows
from .arguments import (
    METHOD_SETTINGS,
    check_estimator_flags,
    estimator_settings,
    flag_of,
)
from .data import IMAGE_DATASETS, SPLITS, check_dataset, load_splits
from .errors import UsageError
from .outputs import evaluate, load_saved, report, write_json, write_results

FINETUNE_METHODS = {"lora": LoRA, "sdlora": SDLoRA}
# options that may change when a run is resumed: they do not change its result
SETTINGS_FREE_ON_RESUME = ("resume", "overwrite", "quiet", "device", "num_workers",
                           "ignored_options", "tabulardata", "allow_pickle")
DATA_FILE_OPTIONS = ("dataset", "trainset", "valset", "testset")


def train(args):
    """The ``train`` command: load, split, fit, evaluate and save."""
    _check_train_arguments(args)
    paths = _train_paths(args)
    _check_writable(args)
    _check_free(paths, args, resuming=args.resume)
    for path in paths.values():
        remove_stale_temporaries(path)
    checkpoint = _checkpoint_to_resume(paths["last"], args) if args.resume else None
    pretrained = _load_pretrained(args) if args.pretrained else None
    splits, task = load_splits(args)
    if "train" not in splits:
        raise UsageError(f"--train_val_test_split {_format_setting(args.trainvaltestsplit)} "
                         f"leaves no rows for training; raise the training share")
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
    metrics = {name: evaluate(estimator, split, task) for name, split in splits.items()}
    for name, split in splits.items():
        write_results(estimator, split, args, paths[f"{name}_results"])
    summary = {"task": task, "n_epochs": int(estimator.n_epochs_), "n_params": n_params,
               "n_trainable_params": n_trainable}
    if args.pretrained:
        summary.update(pretrained=str(args.pretrained), finetune=args.finetune)
    summary.update(metrics)
    write_json(summary, paths["metrics"])
    save_model(model, paths["model"])
    report(metrics, paths, args, (n_trainable, n_params))
    return 0


def _check_train_arguments(args):
    check_estimator_flags(args)
    ratios = args.trainvaltestsplit
    if any(ratio < 0 for ratio in ratios) or ratios[0] <= 0:
        raise UsageError(f"--train_val_test_split shares must be >= 0 with a positive "
                         f"training share, got {ratios}")
    if not np.isclose(sum(ratios), 1.0):
        raise UsageError(f"--train_val_test_split shares must sum to 1, got {ratios} "
                         f"(sum {sum(ratios):g})")
    if not args.trainset and (args.valset or args.testset):
        raise UsageError("--val_set and --test_set need --trainset")
    check_dataset(args)
    if args.format == "parquet":  # before training, not after it
        import_extra("pyarrow", "parquet", "--format parquet")
    if args.window and not (args.trainset or args.timeseriessplit):
        _split_windows_by_time(args)


def _split_windows_by_time(args):
    """Set ``--time_series_split``: a random split would put training rows in test windows.

    A window holds the rows before its own; split at random, most test windows would
    read rows of the training split. In contiguous blocks only the first windows of each
    block reach back into the block before, as they would in use.
    """
    args.timeseriessplit = True
    if not args.quiet:
        print("Note: --window splits the rows by time (contiguous blocks in file order, "
              "as --time_series_split), since a random split would put training rows "
              "inside test windows")


def _train_paths(args):
    output, name = Path(args.output_dir), args.modelname
    paths = {"model": output / f"{name}.safetensors",
             "metrics": output / f"{name}_metrics.json",
             "last": Path(args.checkpoint_dir) / f"{name}_last.pt",
             "best": Path(args.checkpoint_dir) / f"{name}_best.pt"}
    for split in SPLITS:
        paths[f"{split}_results"] = output / f"{name}_{split}_results.{args.format}"
    return paths


def run_settings(args):
    """The options of a ``train`` run that a resumed run must repeat, as plain values,
    with the size and content hash of its data files (``"data_files"``)."""
    settings = {name: str(value) if isinstance(value, Path) else value
                for name, value in sorted(vars(args).items())
                if name not in SETTINGS_FREE_ON_RESUME and not callable(value)}
    settings["data_files"] = data_fingerprints(args)
    return settings


def data_fingerprints(args):
    """``{path: {"size", "sha256"}}`` of the data files the run reads."""
    paths = [getattr(args, name, None) for name in DATA_FILE_OPTIONS]
    return {str(path): _fingerprint(path) for path in paths
            if path and Path(path).is_file()}


def _fingerprint(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"size": os.path.getsize(path), "sha256": digest.hexdigest()}


def _checkpoint_to_resume(path, args):
    """The checkpoint at ``path``, if it was written by a run with the same settings."""
    checkpoint = load_saved(path, "checkpoint")
    saved = checkpoint.get("settings")
    if saved is not None:  # written by a run of this command
        current = run_settings(args)
        _check_same_data(saved.get("data_files", {}), current.pop("data_files"), path)
        changed = [f"{flag_of(name)} {_format_setting(saved.get(name))} "
                   f"(now {_format_setting(current[name])})"
                   for name in current if saved.get(name) != current[name]]
        if changed:
            raise UsageError(f"--resume: {path} was written by a run with "
                             f"{', '.join(changed)}; resume with the same options, or "
                             f"start anew with --overwrite")
    if not args.quiet:
        print(f"Resuming from {path} after epoch {checkpoint['epoch']}")
    return checkpoint


def _check_same_data(saved, current, path):
    for data_file, fingerprint in saved.items():
        if current.get(data_file) != fingerprint:
            what = "is gone" if data_file not in current else "changed (size or content)"
            raise UsageError(f"--resume: the data file {data_file} {what} since {path} was "
                             f"written; resume with the data the run started with, or start "
                             f"anew with --overwrite")


def _format_setting(value):
    if value is None:
        return "(not given)"
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _check_writable(args):
    """UsageError, before anything is read or trained, when an output folder cannot be
    written. Nothing is created here: the nearest existing folder is checked."""
    for option in ("output_dir", "checkpoint_dir"):
        folder = Path(getattr(args, option))
        existing = next(path for path in (folder, *folder.parents) if path.exists())
        if not existing.is_dir():
            raise UsageError(f"--{option} {folder}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"--{option} {folder}: cannot write in {existing} "
                             f"(permission denied)")


def _check_free(paths, args, resuming=False):
    """UsageError when the run would replace files of another run.

    A resumed run replaces the outputs of the run it resumes: a kill while they were
    written must not block the resume.
    """
    if resuming and not paths["last"].is_file():
        raise UsageError(f"--resume: no checkpoint {paths['last']} to resume from")
    if args.overwrite or resuming:
        return
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing:
        hint = "; use --resume to continue it" if paths["last"].exists() else ""
        raise UsageError(f"{existing[0]} exists; pass --overwrite to replace it, or choose "
                         f"another --model_name{hint}")


# ---------------------------------------------------------------------------- fitting
def _load_pretrained(args):
    """The model saved in ``--pretrained`` by ``s4learn train`` and its estimator."""
    path = args.pretrained
    model = load_saved(path, "pretrained model", allow_pickle=args.allow_pickle)
    estimator = model[-1] if isinstance(model, Pipeline) else model
    if not (isinstance(estimator, (S4Classifier, S4Regressor)) and hasattr(estimator, "net_")):
        raise UsageError(f"--pretrained: {path} is not a model saved by 's4learn train'")
    return model, estimator


def finetune_method(args):
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
                      "finetune": finetune_method(args)}
        _note_finetuning(args, finetuning["finetune"])
    settings = estimator_settings(args, estimator_class is S4Classifier)
    legacy_layout = {"input_type", "image_layout", "sequence_layout"} & set(settings)
    if is_image and "layout" not in settings and not legacy_layout:
        settings["layout"] = "image"  # (n, H, W) digits and MNIST are not (n, L, C)
    if args.window and "layout" not in settings and not legacy_layout:
        settings["layout"] = "NLC"  # windows are (rows, window, features)
    return estimator_class(**settings, verbose=0 if args.quiet else 1,
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
            estimator.resume_fit(train.X, train.y, checkpoint, validation_data=validation)
        else:
            estimator.fit(train.X, train.y, validation_data=validation)
    except ValueError as error:
        # bad settings, data the estimator cannot read, or (fine-tuning) data or
        # settings that do not fit the pretrained model
        doing = f"fine-tune {args.pretrained}" if args.pretrained else "train"
        raise UsageError(f"cannot {doing}: {error}") from None
