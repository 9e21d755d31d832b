"""Dropout tied over time (one mask per sequence and channel) against per-element dropout.

Digits as sequences of 64 pixels, a small network (d_model=32, 2 layers, d_state=16,
dropout=0.2), the same seeds for both kinds of dropout, fits interleaved so that both
see the same machine load. Prints a markdown table: median seconds per epoch and the
test accuracy of each seed.

    python benchmarks/bench_dropout.py [--epochs 10] [--seeds 3]
"""

import argparse
import platform
import statistics

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier
from s4learn.nn import S4Model

LENGTH = 64


def network(tie, seed):
    """The estimator's own architecture for digits, with the chosen dropout."""
    torch.manual_seed(seed)
    return S4Model(d_input=1, d_output=10, d_model=32, n_layers=2, d_state=16, dropout=0.2,
                   tie_dropout=tie, dt_min=1 / LENGTH, dt_max=1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    results = {False: ([], []), True: ([], [])}
    for seed in range(args.seeds):
        for tie in (False, True):
            clf = S4Classifier(pretrained=network(tie, seed), dropout=0.2,
                               max_epochs=args.epochs, random_state=seed,
                               device="cpu").fit(X_train, y_train)
            epoch_seconds, accuracies = results[tie]
            epoch_seconds.extend(row["dur"] for row in clf.net_.history)
            accuracies.append(clf.score(X_test, y_test))
            print(f"seed {seed}, tie={tie}: accuracy {accuracies[-1]:.3f}, s per epoch "
                  f"{statistics.median(epoch_seconds[-args.epochs:]):.2f}", flush=True)
    print("| dropout | s per epoch (median) | test accuracy per seed | mean |\n"
          "| --- | --- | --- | --- |")
    for tie, (epoch_seconds, accuracies) in results.items():
        print(f"| {'tied over time' if tie else 'per element'} | "
              f"{statistics.median(epoch_seconds):.2f} | "
              f"{', '.join(f'{a:.3f}' for a in accuracies)} | {np.mean(accuracies):.3f} |")
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")


if __name__ == "__main__":
    main()
