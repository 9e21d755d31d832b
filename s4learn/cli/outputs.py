"""What a command writes: results tables, metrics, the printed report; saved files read."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from ..checkpoints import load_checkpoint
from ..extras import import_extra
from ..modelfile import read_record
from ..persistence import read_model_file
from .errors import UsageError


def evaluate(estimator, split, task):
    """The scores of ``estimator`` on one split: accuracy and macro F1, or RMSE, MAE, R²."""
    y_pred = estimator.predict(split.X)
    if task == "classification":
        return {"accuracy": float(accuracy_score(split.y, y_pred)),
                "f1_macro": float(f1_score(split.y, y_pred, average="macro"))}
    return {"rmse": float(np.sqrt(mean_squared_error(split.y, y_pred))),
            "mae": float(mean_absolute_error(split.y, y_pred)),
            "r2": float(r2_score(split.y, y_pred))}


def results_frame(model, X, row_id, y_true=None, features=None):
    """Row ids, true targets (when known), predictions and class probabilities (or, for
    a regressor, the predictive standard deviation)."""
    results = pd.DataFrame({"row_id": row_id})
    if y_true is not None:
        results["y_true"] = y_true
    if predicts_std(model):
        results["y_pred"], results["y_std"] = model.predict(X, return_std=True)
    else:
        results["y_pred"] = model.predict(X)
    if is_classifier(model):
        proba = model.predict_proba(X)
        for column, label in enumerate(model.classes_):
            results[f"proba_{label}"] = proba[:, column]
    if features is not None:
        results = pd.concat([results, features.reset_index(drop=True)], axis=1)
    return results


def predicts_std(model):
    """Whether ``model`` (an estimator or a pipeline ending in one) is a regressor that
    predicts a standard deviation (one fitted with ``noise_std_``)."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return not is_classifier(final) and hasattr(final, "noise_std_")


def write_results(estimator, split, args, path):
    """The results table of one split; with ``--output_data`` its feature columns too."""
    features = split.features if args.output_data else None
    write_table(results_frame(estimator, split.X, split.row_id, split.y, features), path)


def write_table(frame, path):
    """``frame`` as a ``.csv`` or ``.parquet`` file (by the suffix of ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import_extra("pyarrow", "parquet", "writing .parquet files")
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def write_json(value, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def report(metrics, paths, args, counts):
    """Print the parameter counts (not with ``--quiet``), the scores and where they went."""
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


def load_saved(path, what, allow_pickle=False):
    """A model or checkpoint file written by ``s4learn train``, checked.

    Model files are read with :func:`s4learn.persistence.read_model_file` (a pickle only
    with ``allow_pickle``); checkpoints with :func:`s4learn.checkpoints.load_checkpoint`,
    which never unpickles.

    Parameters
    ----------
    path : str or path
    what : {"model", "pretrained model", "checkpoint"}
        What the file should hold; named in the error messages.
    allow_pickle : bool, default=False
        Also read a model saved as a joblib/pickle file (``--allow_pickle``).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file {path} not found")
    if what == "checkpoint":
        try:
            return load_checkpoint(path)
        except ValueError as error:
            raise UsageError(f"--resume: {error}; start anew with --overwrite") from None
    try:
        is_model_file = read_record(path) is not None
    except ValueError as error:  # a newer format
        raise UsageError(str(error)) from None
    if not (is_model_file or allow_pickle):
        flag = "--allow_pickle"
        raise UsageError(f"{path} is not an s4learn model file (.safetensors, as 's4learn "
                         f"train' writes). If it is a joblib/pickle model from a source you "
                         f"trust, pass {flag}: loading a pickle runs any code it names")
    try:
        return read_model_file(path, allow_pickle=allow_pickle)
    except Exception as error:  # unpickling a damaged file raises many error types
        raise UsageError(f"cannot read {what} file {path} ({type(error).__name__}); it is "
                         f"damaged or not an s4learn {what}") from None
