"""Seconds per training epoch of S4Classifier by training precision (and compile).

Random sequences (``--n`` of ``--length`` steps, 1 channel), the default network, one
epoch per fit after a first warm-up epoch. On CUDA it times "float32", "bf16" and
"fp16"; on the CPU "float32" and "bf16" (fp16 autocast needs a GPU). ``--compile``
adds each precision with ``compile=True``.

Run: python benchmarks/bench_precision.py [--device cuda] [--compile]
"""

import argparse
import time

import numpy as np
import torch
from bench_timeseries import EARLIER_DEFAULTS  # beside this script

from s4learn import S4Classifier


def epoch_seconds(X, y, device, precision, compile):
    model = S4Classifier(**EARLIER_DEFAULTS, max_epochs=1,
                         precision=precision, compile=compile,
                         device=device, random_state=0, warm_start=True)
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
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    X = rng.randn(args.n, args.length).astype(np.float32)
    y = (X[:, : args.length // 2].mean(axis=1) > 0).astype(int)
    precisions = ["float32", "bf16"] + (["fp16"] if args.device.startswith("cuda") else [])
    print(f"{args.n} sequences of {args.length} steps on {args.device}, torch "
          f"{torch.__version__}")
    print("| precision | compile | s per epoch |\n|---|---|---|")
    for compile in [False, True] if args.compile else [False]:
        for precision in precisions:
            seconds = epoch_seconds(X, y, args.device, precision, compile)
            print(f"| {precision} | {compile} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
