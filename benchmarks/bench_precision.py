"""Seconds per training epoch of S4Classifier by training precision.

Random sequences (``--n`` of ``--length`` steps, 1 channel), the network of
``bench_timeseries.earlier_network``, one epoch per fit after a first warm-up epoch. On
CUDA it times "float32", "bf16" and "fp16"; on the CPU "float32" and "bf16" (fp16
autocast needs a GPU).

Run: python benchmarks/bench_precision.py [--device cuda]
"""

import argparse
import time

import numpy as np
import torch
from bench_timeseries import earlier_network  # beside this script

from s4learn import S4Classifier


def epoch_seconds(X, y, device, precision):
    model = S4Classifier(pretrained=earlier_network(1, 2), dropout=0.1, max_epochs=1,
                         precision=precision, device=device, random_state=0,
                         warm_start=True)
    model.fit(X, y)  # warm-up: allocation, kernels, compilation
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.fit(X, y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--length", type=int, default=1024)
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    X = rng.randn(args.n, args.length).astype(np.float32)
    y = (X[:, : args.length // 2].mean(axis=1) > 0).astype(int)
    precisions = ["float32", "bf16"] + (["fp16"] if args.device.startswith("cuda") else [])
    print(f"{args.n} sequences of {args.length} steps on {args.device}, torch "
          f"{torch.__version__}")
    print("| precision | s per epoch |\n|---|---|")
    for precision in precisions:
        seconds = epoch_seconds(X, y, args.device, precision)
        print(f"| {precision} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
