"""Candidate S4 defaults against the peers a user would pick, on a whole development pool.

Classification pool: the nine classification sets that aeon bundles (ACSF1, ArrowHead,
BasicMotions, GunPoint, ItalyPowerDemand, JapaneseVowels, OSULeaf,
PickupGestureWiimoteZ) on their official splits, and scikit-learn's digits (a
stratified 75/25 split, random_state=0, each image a 64-step series). Peers: aeon's
MiniRocketClassifier and MultiRocketHydraClassifier (series of unequal lengths padded
with zeros for them).

Regression pool (``--task regression``): aeon's Covid3Month and CardanoSentiment
(official splits), scikit-learn's diabetes (5-fold, shuffled with random_state=0),
next quarter's consumption from the last 4 quarters of aeon's Uschange (5 series; the
first 80% of the quarters train, the last 20% test, so no test target is seen in
training) and s4learn's generated deep-S4 task (``make_deep_s4_regression``, 600
sequences, the last 200 to test). Peers: RidgeCV on the standardised values,
MiniRocketRegressor and MultiRocketHydraRegressor (where the series have at least 9
steps) and HistGradientBoostingRegressor.

Every candidate is fitted on every set of its pool with each seed; its score on a set
is the mean over seeds. The leave-one-dataset-out (LODO) figure of a set is the score
on that set of the candidate that is best on the other sets of the pool (mean accuracy;
for regression the mean RMSE relative to RidgeCV's), so a candidate chosen by the pool
is judged on a set it was not chosen on. The peers are fitted once each first on a
small set, so no fit time counts numba compiling; likewise each process that fits S4
fits a tiny one first, so no fit time counts the one-time import that torch's first
optimizer makes (``torch._dynamo``, about 3 s).

Each fit is one line of ``--results`` (JSON lines): a run with more candidates or seeds
reuses what is there, so a pool can be screened in pieces.

Run: python benchmarks/bench_pool.py [--task regression] [--seeds 3] [--jobs 2]
     [--candidates '{"defaults": {}, "short": {"max_epochs": 20}}']
     [--results benchmarks/pool_results.jsonl] [--write docs/benchmarks.md]
Needs the timeseries extra: pip install "s4learn[timeseries]".
"""

import json
import os
import time

import numpy as np
import torch
from bench_timeseries import benchmark_arguments, write  # beside this script
from joblib import Parallel, delayed
from sklearn.datasets import load_diabetes, load_digits
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s4learn import S4Classifier, S4Regressor

POOLS = {
    "classification": ("ACSF1", "ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand",
                       "JapaneseVowels", "OSULeaf", "PickupGestureWiimoteZ", "digits"),
    "regression": ("Covid3Month", "CardanoSentiment", "diabetes", "Uschange", "deep-S4"),
}
PEERS = {"classification": ("MiniRocket", "MultiRocketHydra"),
         "regression": ("RidgeCV", "MiniRocket", "MultiRocketHydra", "HistGradientBoosting")}
MARKERS = {"classification": "<!-- bench_pool -->",
           "regression": "<!-- bench_pool_regression -->"}
UNCERTAINTY_LEVEL = 0.90  # central interval whose coverage is reported
Z_90 = 1.6448536269514722  # its half-width in standard deviations of a normal


# ------------------------------------------------------------------------------ data
def splits(name):
    """A list of (X_train, y_train, X_test, y_test), aeon's layout: (n, channels,
    length) arrays or lists of (channels, length) arrays; tables as (n, features)."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X[:, None, :], y, test_size=0.25, stratify=y, random_state=0)
        return [(X_train, y_train, X_test, y_test)]
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        folds = KFold(5, shuffle=True, random_state=0).split(X)
        return [(X[train], y[train], X[test], y[test]) for train, test in folds]
    if name == "Uschange":
        return [uschange_windows()]
    if name == "deep-S4":
        from s4learn.datasets import make_deep_s4_regression
        X, y, _ = make_deep_s4_regression(n_samples=600, seq_len=64, d_model=4,
                                          noise=0.1, random_state=0)
        X = np.ascontiguousarray(X.transpose(0, 2, 1))  # channels first, as aeon's
        return [(X[:400], y[:400], X[400:], y[400:])]
    if name in POOLS["regression"]:
        from aeon.datasets import load_regression
        return [(*load_regression(name, split="train"), *load_regression(name, split="test"))]
    from aeon.datasets import load_classification
    return [(*load_classification(name, split="train"),
             *load_classification(name, split="test"))]


def uschange_windows(window=4):
    """Windows (n, 5 series, ``window`` quarters) of Uschange and next quarter's
    consumption, split in time: the first 80% of the windows train."""
    from aeon.datasets import load_uschange
    frame = load_uschange(return_array=False)  # (5 series, 187 quarters)
    series = frame.to_numpy().T
    consumption = series[:, list(frame.index).index("Consumption")]
    X = np.stack([series[t - window:t].T for t in range(window, len(series))])
    y = consumption[window:]
    n_train = int(round(0.8 * len(y)))
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def is_ragged(X):
    return isinstance(X, list)


def padded(X_train, X_test):
    """Both parts zero-padded at the end to the longest series of either."""
    from aeon.transformations.collection.unequal_length import Padder
    padder = Padder().fit(X_train + X_test)
    return padder.transform(X_train), padder.transform(X_test)


# ---------------------------------------------------------------------------- models
def peer(task, model, seed):
    classification = task == "classification"
    if model == "MiniRocket":
        from aeon.classification.convolution_based import MiniRocketClassifier
        from aeon.regression.convolution_based import MiniRocketRegressor
        return (MiniRocketClassifier if classification else MiniRocketRegressor)(
            random_state=seed)
    if model == "MultiRocketHydra":
        from aeon.classification.convolution_based import MultiRocketHydraClassifier
        from aeon.regression.convolution_based import MultiRocketHydraRegressor
        return (MultiRocketHydraClassifier if classification else MultiRocketHydraRegressor)(
            random_state=seed)
    if model == "RidgeCV":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    return HistGradientBoostingRegressor(random_state=seed)


def peer_inputs(model, X_train, X_test):
    """What ``model`` reads: Rocket models 3-D series (None where they are shorter
    than MiniRocket's 9 steps), the tabular models flat rows."""
    if is_ragged(X_train):
        X_train, X_test = padded(X_train, X_test)
    if model in ("RidgeCV", "HistGradientBoosting"):
        return X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    if X_train.ndim == 2:
        X_train, X_test = X_train[:, None, :], X_test[:, None, :]
    if X_train.shape[-1] < 9:
        return None
    return X_train, X_test


def s4_model(task, settings, seed, X_train):
    estimator = S4Classifier if task == "classification" else S4Regressor
    table = not is_ragged(X_train) and np.ndim(X_train) == 2
    layout = "NLC" if table else "NCL"  # a table's row, or aeon's layout
    return estimator(layout=layout, random_state=seed, device="cpu", **settings)


def fit_and_score(task, model, X_train, y_train, X_test, y_test):
    """The fitted model's figures on the test part and its fit time."""
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    y_test = np.asarray(y_test)
    if task == "classification":
        return {"score": float(np.mean(model.predict(X_test) == y_test)),
                "seconds": seconds}
    try:
        prediction, std = model.predict(X_test, return_std=True)
        coverage = float(np.mean(np.abs(y_test - prediction) <= Z_90 * std))
    except TypeError:  # a model without a predictive standard deviation
        prediction, coverage = model.predict(X_test), None
    return {"rmse": float(np.sqrt(mean_squared_error(y_test, prediction))),
            "r2": float(r2_score(y_test, prediction)), "coverage": coverage,
            "seconds": seconds}


def s4_fit(task, name, candidate, settings, seed, threads):
    torch.set_num_threads(threads)
    warm_up_s4(task)
    results = [fit_and_score(task, s4_model(task, settings, seed, part[0]), *part)
               for part in splits(name)]
    return record(task, name, "S4", candidate, seed, results)


def peer_fit(task, name, parts, model, seed):
    """One peer on the splits ``parts`` of data set ``name`` (None where it cannot
    read them)."""
    results = []
    for X_train, y_train, X_test, y_test in parts:
        inputs = peer_inputs(model, X_train, X_test)
        if inputs is None:
            return None
        results.append(fit_and_score(task, peer(task, model, seed), inputs[0], y_train,
                                     inputs[1], y_test))
    return record(task, name, model, model, seed, results)


def mean_or_none(values):
    """The mean of ``values``, or None where one of them is None (a figure a model
    does not give)."""
    values = list(values)
    return None if any(value is None for value in values) else float(np.mean(values))


def record(task, name, model, candidate, seed, results):
    """One line of the results: the figures averaged over the data set's splits."""
    figures = {key: mean_or_none(result[key] for result in results) for key in results[0]}
    return {"task": task, "dataset": name, "model": model, "candidate": candidate,
            "seed": seed, **figures}


def warm_up_s4(task):
    """One tiny fit, untimed, in each worker process: the first optimizer a process
    builds imports ``torch._dynamo`` (about 3 s), a one-time cost like the peers'
    numba compilation."""
    if getattr(warm_up_s4, "done", False):
        return
    X = np.random.RandomState(0).randn(16, 1, 8)
    y = np.arange(16) % 2 if task == "classification" else X[:, 0, 0]
    s4_model(task, {"max_epochs": 1, "d_model": 4, "d_state": 2}, 0, X).fit(X, y)
    warm_up_s4.done = True


def warm_up_peers(task):
    """Compile the peers' numba kernels on a small set, untimed."""
    X = np.random.RandomState(0).randn(20, 1, 30)
    y = np.arange(20) % 2 if task == "classification" else X[:, 0, 0]
    for model in ("MiniRocket", "MultiRocketHydra"):
        peer(task, model, 0).fit(X, y)


# --------------------------------------------------------------------------- results
def read_results(path):
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def append_results(path, lines):
    with open(path, "a") as file:
        for line in lines:
            if line is not None:
                file.write(json.dumps(line) + "\n")


def have(results, task, name, candidate, seed):
    return any(result["task"] == task and result["dataset"] == name and
               result["candidate"] == candidate and result["seed"] == seed
               for result in results)


def mean_figures(results, task, seeds):
    """{(candidate, data set): {figure: mean over seeds}} of the fits with ``seeds``."""
    table = {}
    for result in results:
        if result["task"] == task and result["seed"] in seeds:
            table.setdefault((result["candidate"], result["dataset"]), []).append(result)
    return {key: {figure: mean_or_none(fit[figure] for fit in fits)
                  for figure in fits[0] if figure not in
                  ("task", "dataset", "model", "candidate", "seed")}
            for key, fits in table.items()}


def loss(task, figures, candidate, name):
    """What the LODO choice minimises on one set: the error rate, or the RMSE relative
    to RidgeCV's."""
    if task == "classification":
        return 1.0 - figures[candidate, name]["score"]
    return figures[candidate, name]["rmse"] / figures["RidgeCV", name]["rmse"]


def lodo_choices(task, figures, candidates, datasets):
    """{data set: the candidate with the lowest mean loss on the other sets}."""
    choices = {}
    for held_out in datasets:
        others = [name for name in datasets if name != held_out]
        choices[held_out] = min(candidates, key=lambda candidate: np.mean(
            [loss(task, figures, candidate, name) for name in others]))
    return choices


def table(task, results, candidates, datasets, seeds):
    figures = mean_figures(results, task, set(seeds))
    candidates = [c for c in candidates if all((c, d) in figures for d in datasets)]
    choices = lodo_choices(task, figures, candidates, datasets)
    metric = "score" if task == "classification" else "rmse"
    peers = [p for p in PEERS[task] if any((p, d) in figures for d in datasets)]
    header = (["data set"] + [f"{c}" for c in candidates] + ["LODO (chosen)"] + peers
              + [f"{c} fit / MiniRocket fit" for c in candidates])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ratios = {candidate: [] for candidate in candidates}
    for name in datasets:
        def cell(model, name=name, figure=metric):
            value = figures.get((model, name), {}).get(figure)
            return "n/a" if value is None else f"{value:.3f}"
        cells = [name] + [cell(c) for c in candidates]
        cells.append(f"{cell(choices[name])} ({choices[name]})")
        cells += [cell(p) for p in peers]
        for candidate in candidates:
            rocket = figures.get(("MiniRocket", name), {}).get("seconds")
            ratio = None if rocket is None else (figures[candidate, name]["seconds"] /
                                                 rocket)
            if ratio is not None:
                ratios[candidate].append(ratio)
            cells.append("n/a" if ratio is None else
                         f"{ratio:.0f} ({figures[candidate, name]['seconds']:.1f} s)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += summary(task, figures, candidates, datasets, choices, peers, ratios)
    what = "accuracy" if task == "classification" else "test RMSE (diabetes: 5-fold mean)"
    lines.append(f"\n{what[0].upper() + what[1:]}, mean over seeds {list(seeds)}; torch "
                 f"{torch.__version__}, one torch thread per S4 fit.")
    return "\n".join(lines)


def summary(task, figures, candidates, datasets, choices, peers, ratios):
    """Mean accuracy (or mean RMSE relative to RidgeCV, and 90% coverage) and the
    median fit-time ratio, as table rows."""
    def mean_of(model):
        if task == "classification":
            return np.mean([figures[model, name]["score"] for name in datasets])
        return np.mean([loss(task, figures, model, name) for name in datasets])
    label = "mean accuracy" if task == "classification" else "mean RMSE / RidgeCV's"
    lodo = np.mean([figures[choices[name], name]["score"] if task == "classification"
                    else loss(task, figures, choices[name], name) for name in datasets])
    peer_cells = [f"{mean_of(p):.4f}" if all((p, d) in figures for d in datasets)
                  else "n/a" for p in peers]
    rows = ["| " + " | ".join([label] + [f"{mean_of(c):.4f}" for c in candidates]
                              + [f"{lodo:.4f}"] + peer_cells
                              + [f"median {np.median(ratios[c]):.0f}" if ratios[c] else
                                 "n/a" for c in candidates]) + " |"]
    if task == "regression":
        def coverage(model):
            values = [figures[model, name]["coverage"] for name in datasets]
            return "n/a" if None in values else f"{np.mean(values):.3f}"
        rows.append("| " + " | ".join(
            ["90% interval coverage"] + [coverage(c) for c in candidates] + [""]
            + ["" for _ in peers] + ["" for _ in candidates]) + " |")
    return rows


# ------------------------------------------------------------------------------ main
def main():
    parser = benchmark_arguments(__doc__.splitlines()[0])
    parser.add_argument("--task", choices=tuple(POOLS), default="classification")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", help="a part of the pool (default all)")
    parser.add_argument("--candidates", type=json.loads, default={"defaults": {}},
                        help="JSON: {name: S4 settings}; default {\"defaults\": {}}")
    parser.add_argument("--jobs", type=int, default=1, help="S4 fits at once")
    parser.add_argument("--results", default="benchmarks/pool_results.jsonl")
    args = parser.parse_args()
    task, seeds = args.task, range(args.seeds)
    datasets = args.datasets or POOLS[task]
    results = read_results(args.results)
    todo = [(name, candidate, seed) for candidate in args.candidates for name in datasets
            for seed in seeds if not have(results, task, name, candidate, seed)]
    for line in Parallel(n_jobs=args.jobs, return_as="generator")(
            delayed(s4_fit)(task, name, candidate, args.candidates[candidate], seed,
                            args.threads) for name, candidate, seed in todo):
        append_results(args.results, [line])
        print(json.dumps(line), flush=True)
    warm_up_peers(task)
    for name in datasets:
        todo = [(model, seed) for model in PEERS[task] for seed in seeds
                if not have(results, task, name, model, seed)]
        parts = splits(name) if todo else None  # read once for all the peers' fits
        append_results(args.results, [peer_fit(task, name, parts, model, seed)
                                      for model, seed in todo])
    results = read_results(args.results)
    text = table(task, results, list(args.candidates), datasets, seeds)
    settings = "; ".join(f"{name}: {json.dumps(value)}"
                         for name, value in args.candidates.items())
    text += f" Candidates: {settings}."
    print(text)
    if args.write:
        write(args.write, text, MARKERS[task])


if __name__ == "__main__":
    main()
