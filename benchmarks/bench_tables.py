"""S4 defaults on tables against what a table user would pick, side by side in one run.

Classification (accuracy) on scikit-learn's wine, breast cancer and iris, regression
(R2) on diabetes, 5-fold cross-validation (stratified for classification, shuffled with
random_state=0), each model with its defaults:

- ``s4learn train``: the command line's defaults, one CSV per fold (``--trainset`` /
  ``--testset``);
- ``S4Classifier`` / ``S4Regressor`` (``random_state=0``);
- ``make_pipeline(StandardScaler(), MLPClassifier())``, ``HistGradientBoostingClassifier``
  and ``LogisticRegression`` (in a pipeline with ``StandardScaler``), and the regressor
  counterparts (``MLPRegressor``, ``HistGradientBoostingRegressor``, ``Ridge``).

Forecasting: aeon's Uschange (quarterly changes of US consumption, income, production,
savings and unemployment, 187 quarters): next quarter's consumption from the last 4
quarters of all five series, on a time split (first 80% to train, last 20% to test).
``s4learn train --window 4 --timeseriessplit`` against a Ridge and a
HistGradientBoostingRegressor on the same 4 quarters as lag features (R2 on the test
quarters).

Run: python benchmarks/bench_tables.py [--write docs/benchmarks.md]
"""

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_timeseries import benchmark_arguments, write  # beside this script
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s4learn import S4Classifier, S4Regressor
from s4learn.cli import main as s4learn_command
from s4learn.preprocessing import SequenceWindows

TABLES = {"wine": load_wine, "breast cancer": load_breast_cancer, "iris": load_iris,
          "diabetes": load_diabetes}
MODELS = ("s4learn train", "S4 estimator", "MLP", "HistGradientBoosting", "linear")
MARKER = "<!-- bench_tables -->"
WINDOW = 4


def peers(is_classification):
    if is_classification:
        return {"MLP": make_pipeline(StandardScaler(), MLPClassifier(random_state=0)),
                "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0),
                "linear": make_pipeline(StandardScaler(), LogisticRegression())}
    return {"MLP": make_pipeline(StandardScaler(), MLPRegressor(random_state=0)),
            "HistGradientBoosting": HistGradientBoostingRegressor(random_state=0),
            "linear": make_pipeline(StandardScaler(), Ridge())}


def command_line_score(frame, train, test, is_classification, folder):
    """Test score of ``s4learn train`` with its defaults on one fold."""
    frame.iloc[train].to_csv(folder / "train.csv", index=False)
    frame.iloc[test].to_csv(folder / "test.csv", index=False)
    task = "classification" if is_classification else "regression"
    metrics = run_command(folder, "--trainset", folder / "train.csv", "--testset",
                          folder / "test.csv", "--dependent_variable", "target",
                          "--task", task)
    return metrics["test"]["accuracy" if is_classification else "r2"]


def run_command(folder, *arguments):
    """Run ``s4learn train`` quietly in ``folder``; its metrics."""
    with contextlib.redirect_stdout(io.StringIO()):
        status = s4learn_command(["train", *map(str, arguments), "--quiet", "--overwrite",
                                  "--output_dir", str(folder / "runs"), "--checkpoint_dir",
                                  str(folder / "checkpoints")])
    if status != 0:
        raise SystemExit(f"s4learn train failed with status {status}")
    return json.loads((folder / "runs" / "s4model_metrics.json").read_text())


def score(model, X_train, y_train, X_test, y_test, is_classification):
    model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    return float(np.mean(y_pred == y_test)) if is_classification else r2_score(y_test, y_pred)


def table_row(name, load, folder):
    X, y = load(return_X_y=True)
    is_classification = name != "diabetes"
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(target=y)
    splitter = (StratifiedKFold if is_classification else KFold)(5, shuffle=True,
                                                                  random_state=0)
    scores = {model: [] for model in MODELS}
    seconds = {model: 0.0 for model in MODELS}
    estimator_class = S4Classifier if is_classification else S4Regressor
    for train, test in splitter.split(X, y):
        start = time.perf_counter()
        scores["s4learn train"].append(command_line_score(frame, train, test,
                                                          is_classification, folder))
        seconds["s4learn train"] += time.perf_counter() - start
        models = {"S4 estimator": estimator_class(random_state=0),
                  **peers(is_classification)}
        for model_name, model in models.items():
            start = time.perf_counter()
            scores[model_name].append(score(model, X[train], y[train], X[test], y[test],
                                            is_classification))
            seconds[model_name] += time.perf_counter() - start
    metric = "accuracy" if is_classification else "R2"
    return name, metric, {model: (np.mean(scores[model]), np.std(scores[model]),
                                  seconds[model] / 5) for model in MODELS}


def uschange_row(folder):
    from aeon.datasets import load_uschange
    series = load_uschange(return_array=False).T.reset_index(drop=True)  # (187, 5)
    frame = series.assign(target=series["Consumption"].shift(-1)).iloc[:-1]
    n_train = int(round(0.8 * len(frame)))
    frame.to_csv(folder / "uschange.csv", index=False)
    start = time.perf_counter()
    metrics = run_command(folder, "--dataset", folder / "uschange.csv",
                          "--dependent_variable", "target", "--task", "regression",
                          "--window", WINDOW, "--timeseriessplit", "--trainvaltestsplit",
                          0.8, 0.0, 0.2)
    results = {"s4learn train": (metrics["test"]["r2"], 0.0, time.perf_counter() - start)}
    lags = SequenceWindows(WINDOW).fit_transform(series.iloc[:-1].to_numpy())
    lags = lags.reshape(len(lags), -1)
    y = frame["target"].to_numpy()
    for model_name, model in peers(False).items():
        if model_name == "MLP":
            continue
        start = time.perf_counter()
        r2 = score(model, lags[:n_train], y[:n_train], lags[n_train:], y[n_train:], False)
        results[model_name] = (r2, 0.0, time.perf_counter() - start)
    return "Uschange (forecast)", "R2", results


def format_row(name, metric, results):
    cells = [name, metric]
    for model in MODELS:
        if model not in results:
            cells.append("")
            continue
        mean, std, seconds = results[model]
        spread = f" ± {std:.3f}" if std else ""
        cells.append(f"{mean:.3f}{spread} ({seconds:.1f} s)")
    return "| " + " | ".join(cells) + " |"


def main():
    args = benchmark_arguments(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    header = ("| data | metric | " + " | ".join(MODELS) + " |\n"
              + "|---" * (len(MODELS) + 2) + "|")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, load in TABLES.items():
            rows.append(format_row(*table_row(name, load, folder)))
            print(rows[-1], flush=True)
        rows.append(format_row(*uschange_row(folder)))
        print(rows[-1], flush=True)
    text = "\n".join([header, *rows, "", f"Mean ± standard deviation over 5 folds (mean fit "
                      f"and predict time per fold); torch {torch.__version__}, "
                      f"{args.threads} torch thread(s) for the S4 models."])
    print(text)
    if args.write:
        write(args.write, text, MARKER)


if __name__ == "__main__":
    main()
