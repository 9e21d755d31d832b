"""One training epoch on series of unequal lengths: grouped batches vs padding to the max.

512 univariate series with lengths drawn uniformly from 10 to 2000 steps. S4Classifier
reads the list as it is: training batches group series of similar length and are cut
to the longest in each. The alternative is what a model without masking needs: every
series zero-padded to 2000 steps. Both fits run one epoch (``max_epochs=1,
min_steps=0``) with the default network; each is timed ``--repeats`` times,
alternating, and the fastest time of each is kept.

Run: python benchmarks/bench_unequal_lengths.py [--repeats 3]
"""

import argparse
import time

import numpy as np
import torch
from bench_timeseries import earlier_network  # beside this script

from s4learn import S4Classifier


def series(n=512, low=10, high=2000, seed=0):
    rng = np.random.RandomState(seed)
    lengths = rng.randint(low, high + 1, size=n)
    X = [rng.randn(length).astype(np.float32) for length in lengths]
    return X, np.arange(n) % 2, lengths


def padded_to_max(X, length):
    padded = np.zeros((len(X), length, 1), dtype=np.float32)
    for row, x in zip(padded, X):
        row[:len(x), 0] = x
    return padded


def epoch_seconds(X, y):
    model = S4Classifier(pretrained=earlier_network(1, len(np.unique(y))), dropout=0.1,
                         max_epochs=1, random_state=0, device="cpu")
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, y, lengths = series()
    padded = padded_to_max(X, lengths.max())
    grouped, full = [], []
    for _ in range(args.repeats):
        grouped.append(epoch_seconds(X, y))
        full.append(epoch_seconds(padded, y))
    print(f"{len(X)} series, lengths {lengths.min()} to {lengths.max()} (mean "
          f"{lengths.mean():.0f}); torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads")
    print(f"grouped batches, masked: {min(grouped):.1f} s per epoch")
    print(f"padded to {lengths.max()} steps: {min(full):.1f} s per epoch")
    print(f"ratio: {min(full) / min(grouped):.2f}x")


if __name__ == "__main__":
    main()
