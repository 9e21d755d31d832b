"""Series of unequal lengths read as they are, zero-padded, or resampled to one length.

For each set the classifier is fitted three ways with the same settings and seeds: on
the list of series (batches grouped by length, padding masked), on the series
zero-padded at the end to the longest (as a model without masking needs), and on the
series linearly resampled to the longest length. Sets: the unequal-length sets of the
classification pool (aeon's JapaneseVowels and PickupGestureWiimoteZ, official splits)
and a generated one whose lengths spread over a factor of 15: 150 train and 150 test
series of 20 to 300 steps of noise, each holding one short motif at a random place,
a rise-then-fall or a fall-then-rise (the class).

Run: python benchmarks/bench_unequal_accuracy.py [--seeds 3] [--settings '{"max_epochs": 30}']
     [--write docs/benchmarks.md]
Needs the timeseries extra: pip install "s4learn[timeseries]".
"""

import json
import time

import numpy as np
import torch
from bench_timeseries import benchmark_arguments, write  # beside this script

from s4learn import S4Classifier

MARKER = "<!-- bench_unequal_accuracy -->"
SETS = ("JapaneseVowels", "PickupGestureWiimoteZ", "generated motifs")


def motif_series(n, seed, low=20, high=300, width=8):
    """``n`` series (1, length) of noise with one motif each, and the motif's class."""
    rng = np.random.RandomState(seed)
    shape = np.sin(np.linspace(0, np.pi, width)) * 2.5
    X, y = [], rng.randint(0, 2, size=n)
    for label in y:
        length = rng.randint(low, high + 1)
        x = rng.randn(length) * 0.5
        start = rng.randint(0, length - 2 * width)
        sign = 1 if label else -1
        x[start:start + width] += sign * shape
        x[start + width:start + 2 * width] -= sign * shape
        X.append(x[None, :])
    return X, y


def load(name):
    if name == "generated motifs":
        return (*motif_series(150, 0), *motif_series(150, 1))
    from aeon.datasets import load_classification
    return (*load_classification(name, split="train"),
            *load_classification(name, split="test"))


def padded(X, length):
    out = np.zeros((len(X), X[0].shape[0], length))
    for row, x in zip(out, X):
        row[:, :x.shape[1]] = x
    return out


def resampled(X, length):
    out = np.empty((len(X), X[0].shape[0], length))
    for row, x in zip(out, X):
        old = np.linspace(0, 1, x.shape[1])
        new = np.linspace(0, 1, length)
        row[:] = [np.interp(new, old, channel) for channel in x]
    return out


def inputs(X_train, X_test, how):
    if how == "list":
        return X_train, X_test
    length = max(x.shape[1] for x in [*X_train, *X_test])
    transform = padded if how == "padded" else resampled
    return transform(X_train, length), transform(X_test, length)


def score(name, how, settings, seed):
    X_train, y_train, X_test, y_test = load(name)
    X_train, X_test = inputs(list(X_train), list(X_test), how)
    model = S4Classifier(layout="NCL", random_state=seed, device="cpu", **settings)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return float(np.mean(model.predict(X_test) == np.asarray(y_test))), seconds


def main():
    parser = benchmark_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--settings", type=json.loads, default={},
                        help="JSON: S4Classifier settings (default: its defaults)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = ["| data set | list | zero-padded | resampled | list - best of the three |",
            "|---|---|---|---|---|"]
    for name in SETS:
        means = {}
        for how in ("list", "padded", "resampled"):
            runs = [score(name, how, args.settings, seed) for seed in range(args.seeds)]
            means[how] = float(np.mean([accuracy for accuracy, _ in runs]))
            print(name, how, runs, flush=True)
        gap = means["list"] - max(means.values())
        rows.append(f"| {name} | {means['list']:.4f} | {means['padded']:.4f} | "
                    f"{means['resampled']:.4f} | {gap:+.4f} |")
    text = "\n".join(rows) + (f"\n\nMean test accuracy over {args.seeds} seeds; settings "
                              f"{json.dumps(args.settings)}.")
    print(text)
    if args.write:
        write(args.write, text, MARKER)


if __name__ == "__main__":
    main()
