"""S4Classifier with its defaults against aeon's MiniRocketClassifier, side by side.

Data: OSULeaf, ACSF1 and JapaneseVowels (unequal lengths, 12 channels) from the UCR/UEA
archives on their official train/test splits (aeon ships them), and scikit-learn's digits
(a stratified 75/25 split, random_state=0, each image a 64-step series). Each model is fit
on the training split and scored on the test split; fit time is wall-clock.

MiniRocket needs equal lengths: JapaneseVowels is padded at the end with zeros for it
(aeon's Padder), while S4Classifier reads the unequal-length list as it is.

``--more`` runs the five other classification sets that aeon bundles instead (ArrowHead,
BasicMotions, GunPoint, ItalyPowerDemand and PickupGestureWiimoteZ, whose series have
unequal lengths), and writes its own table; ``--datasets PigCVP`` any other set of the
archives that aeon can download; ``--params '{"d_model": 64}'`` fits S4Classifier with
these settings instead of its defaults.

Run: python benchmarks/bench_timeseries.py [--seeds 5] [--more] [--jobs 2]
     [--write docs/benchmarks.md]
Needs the timeseries extra: pip install "s4learn[timeseries]".
"""

import argparse
import json
import time

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier

DATASETS = ("OSULeaf", "ACSF1", "JapaneseVowels", "digits")
MORE_DATASETS = ("ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand",
                 "PickupGestureWiimoteZ")
MARKER = "<!-- bench_timeseries -->"
MORE_MARKER = "<!-- bench_timeseries_more -->"
THREADS = [1]  # torch threads of the S4 fits, set from --threads
def earlier_network(d_input, d_output):
    """The first estimator network (64 wide, 4 post-norm LayerNorm blocks, no
    differences): the network the timing benchmarks were measured with. Pass it as
    ``pretrained=``; dropout 0.1 as it had."""
    from s4learn.nn import S4Model

    return S4Model(d_input, d_output, d_model=64, n_layers=4, prenorm=False, dropout=0.1,
                   norm="layer", differences=False, log_differences=False)


def load(name):
    """(X_train, y_train, X_test, y_test) in aeon's layout: (n, channels, length) or list."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X[:, None, :], y, test_size=0.25, stratify=y, random_state=0)
        return X_train, y_train, X_test, y_test
    from aeon.datasets import load_classification
    X_train, y_train = load_classification(name, split="train")
    X_test, y_test = load_classification(name, split="test")
    return X_train, y_train, X_test, y_test


def minirocket(X_train, y_train, X_test, y_test, seed):
    from aeon.classification.convolution_based import MiniRocketClassifier
    from aeon.transformations.collection.unequal_length import Padder
    if isinstance(X_train, list):
        padder = Padder().fit(X_train + X_test)
        X_train, X_test = padder.transform(X_train), padder.transform(X_test)
    model = MiniRocketClassifier(random_state=seed)
    return timed_score(model, X_train, y_train, X_test, y_test)


def s4(X_train, y_train, X_test, y_test, seed, settings=None, threads=1):
    torch.set_num_threads(threads)  # MiniRocket's numba run may have changed it
    model = S4Classifier(layout="NCL", random_state=seed, device="cpu",
                         **(settings or {}))
    return timed_score(model, X_train, y_train, X_test, y_test)


def timed_score(model, X_train, y_train, X_test, y_test):
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return float(np.mean(model.predict(X_test) == np.asarray(y_test))), seconds


def run(datasets, seeds, settings=None, jobs=1):
    """One row per data set; the S4 fits run ``jobs`` at a time, in separate processes."""
    data = {name: load(name) for name in datasets}
    fits = [(name, seed) for name in datasets for seed in range(seeds)]
    s4_scores = dict(zip(fits, Parallel(n_jobs=jobs)(
        delayed(s4)(*data[name], seed, settings, THREADS[0]) for name, seed in fits)))
    rows = []
    for name in datasets:
        results = {"S4Classifier": [s4_scores[name, seed] for seed in range(seeds)],
                   "MiniRocket": [minirocket(*data[name], seed) for seed in range(seeds)]}
        row = {"dataset": name, "n_train": len(data[name][1]), "n_test": len(data[name][3]),
               "seeds": seeds}
        for model, scores in results.items():
            accuracy, seconds = np.array(scores).T
            row[model] = (accuracy.mean(), accuracy.std(), seconds.mean())
        rows.append(row)
        print(format_row(row), "  per seed:", ", ".join(
            f"{model} {' '.join(f'{score[0]:.4f}' for score in scores)}"
            for model, scores in results.items()), flush=True)
    return rows


def format_row(row):
    cells = [row["dataset"], str(row["n_train"]), str(row["n_test"])]
    for model in ("S4Classifier", "MiniRocket"):
        mean, std, seconds = row[model]
        spread = f" ± {std:.3f}" if row["seeds"] > 1 else ""
        cells += [f"{mean:.3f}{spread}", f"{seconds:.1f}"]
    return "| " + " | ".join(cells) + " |"


def table(rows, seeds, jobs=1):
    header = ("| data set | train | test | S4Classifier accuracy | S4 fit (s) | "
              "MiniRocket accuracy | MiniRocket fit (s) |\n|---|---|---|---|---|---|---|")
    means = {model: np.mean([row[model][0] for row in rows])
             for model in ("S4Classifier", "MiniRocket")}
    spread = "One seed" if seeds == 1 else f"Mean ± standard deviation over {seeds} seeds"
    # four decimals: the target compares these two means
    footer = (f"| mean | | | {means['S4Classifier']:.4f} | | {means['MiniRocket']:.4f} | |\n\n"
              f"{spread}; torch "
              f"{torch.__version__}, {THREADS[0]} torch thread(s) for S4Classifier"
              f"{f', {jobs} fits at once' if jobs > 1 else ''}.")
    return "\n".join([header, *map(format_row, rows), footer])


def write(path, text, marker=MARKER):
    """Replace what stands between the two ``marker`` lines of the page ``path``."""
    with open(path) as file:
        page = file.read()
    start = page.find(marker)
    end = page.find(marker, start + 1)
    if start < 0 or end < 0:
        raise SystemExit(f"{path} has no pair of {marker} lines to write the table between")
    with open(path, "w") as file:
        file.write(page[:start + len(marker)] + "\n" + text + "\n" + page[end:])


def benchmark_arguments(description):
    """A parser with ``--write PAGE`` and ``--threads``, shared by the benchmarks."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", metavar="PAGE",
                        help="write the table between the two marker lines of PAGE")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1)")
    return parser


def main():
    parser = benchmark_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=DATASETS,
                        help="digits, or UCR/UEA names: aeon ships the nine of this "
                             "script and downloads others (such as PigCVP) where the "
                             "network allows")
    parser.add_argument("--more", action="store_true",
                        help="the five other classification sets aeon bundles")
    parser.add_argument("--jobs", type=int, default=1,
                        help="S4 fits run at once, one process each (default 1)")
    parser.add_argument("--params", type=json.loads, default={},
                        help="S4Classifier settings as JSON (default: its defaults)")
    args = parser.parse_args()
    THREADS[0] = args.threads
    datasets = MORE_DATASETS if args.more else args.datasets
    text = table(run(datasets, args.seeds, args.params, args.jobs), args.seeds, args.jobs)
    if args.params:
        text += f" S4Classifier settings: {json.dumps(args.params)}."
    print(text)
    if args.write:
        write(args.write, text, MORE_MARKER if args.more else MARKER)


if __name__ == "__main__":
    main()
