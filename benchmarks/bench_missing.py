"""Accuracy with values missing at random, against the complete data.

JapaneseVowels (UEA archive, official train/test split, 12 channels, 7 to 29 steps):
a share of the values of every series, training and test, is set to NaN at random,
and ``S4Classifier(missing="mask")`` (otherwise defaults) is fit on what is left.
The complete data are fit with the defaults alone.

Run: python benchmarks/bench_missing.py [--seeds 3] [--write docs/timeseries.md]
Needs the timeseries extra: pip install "s4learn[timeseries]".
"""

import numpy as np
import torch
from bench_timeseries import benchmark_arguments, write  # beside this script

from s4learn import S4Classifier

MARKER = "<!-- bench_missing -->"

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
    model = S4Classifier(layout="NCL", missing=missing, random_state=seed,
                         device="cpu").fit(X_train, y_train)
    return model.score(X_test, y_test)


def main():
    parser = benchmark_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = ["| values missing | test accuracy |", "|---|---|"]
    for share in SHARES:
        scores = [accuracy(share, seed) for seed in range(args.seeds)]
        lines.append(f"| {share:.0%} | {np.mean(scores):.3f} ± {np.std(scores):.3f} |")
        print(lines[-1], flush=True)
    lines += ["", f"Mean ± standard deviation over {args.seeds} seed(s) (the seed draws the "
              f"removed values and the model's initialisation); torch {torch.__version__}, "
              f"{args.threads} thread(s)."]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write(args.write, text, MARKER)


if __name__ == "__main__":
    main()
