"""Default S4Classifier on scikit-learn's digits: 30% stratified hold-out, random_state=0.

Run: python benchmarks/bench_digits.py
Prints test accuracy and the wall-clock time of fit (2 CPU threads).
"""

import time

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier


def main():
    torch.set_num_threads(2)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0)
    start = time.perf_counter()
    clf = S4Classifier(random_state=0, device="cpu").fit(X_train, y_train)
    seconds = time.perf_counter() - start
    print(f"accuracy {clf.score(X_test, y_test):.4f}  fit time {seconds:.1f} s  "
          f"({clf.n_epochs_} epochs, torch {torch.__version__}, 2 threads)")


if __name__ == "__main__":
    main()
