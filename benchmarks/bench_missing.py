"""Accuracy with values missing at random, against the complete data.

JapaneseVowels (UEA archive, official train/test split, 12 channels, 7 to 29 steps):
a share of the values of every series, training and test, is set to NaN at random,
and ``S4Classifier(missing="mask")`` (otherwise defaults) is fit on what is left.
The complete data are fit with the defaults alone.

Run: python benchmarks/bench_missing.py [--seeds 3]
Needs the timeseries extra: pip install "s4learn[timeseries]".
"""

import argparse

import numpy as np
import torch

from s4learn import S4Classifier

SHARES = (0.0, 0.1, 0.3)


def remove_values(X, share, rng):
    return [np.where(rng.rand(*x.shape) < share, np.nan, x) for x in X]


def accuracy(share, seed):
    from aeon.datasets import load_classification
    X_train, y_train = load_classification("JapaneseVowels", split="train")
    X_test, y_test = load_classification("JapaneseVowels", split="test")
    rng = np.random.RandomState(seed)
    X_train, X_test = remove_values(X_train, share, rng), remove_values(X_test, share, rng)
    missing = "mask" if share else "error"
    model = S4Classifier(sequence_layout="NCL", missing=missing, random_state=seed,
                         device="cpu").fit(X_train, y_train)
    return model.score(X_test, y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| values missing | test accuracy |\n|---|---|")
    for share in SHARES:
        scores = [accuracy(share, seed) for seed in range(args.seeds)]
        print(f"| {share:.0%} | {np.mean(scores):.3f} ± {np.std(scores):.3f} |", flush=True)
    print(f"\nMean ± standard deviation over {args.seeds} seed(s) (the seed draws the "
          f"removed values and the model's initialisation); torch {torch.__version__}, "
          f"{args.threads} thread(s).")


if __name__ == "__main__":
    main()
