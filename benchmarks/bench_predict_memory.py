"""Peak memory of ``predict`` on a large X, against the size of X.

Run ``python benchmarks/bench_predict_memory.py`` (200000 sequences of 1000 steps,
float32: 0.75 GiB; ``--rows``/``--length``/``--dtype`` change it). Each measurement
runs in a fresh process: a tiny classifier is fitted on 256 sequences, X is made, the
peak resident set (VmHWM) is reset, and ``predict(X)`` runs. Reported: the growth of
the peak over the resident set just before ``predict`` (what prediction itself
holds), and the process's whole peak, each as a multiple of the size of X; for the
default ``predict_batch_size`` (256) and for one batch of all rows, which is how
``predict`` worked before it went batch by batch (full float32 and scaled copies).
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

GIB = 2**30


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # VmHWM back to the current resident set


def measure(rows, length, dtype, predict_batch_size):
    """One measurement, in this process: a dict of sizes in GiB and seconds."""
    import torch

    from s4learn import S4Classifier

    torch.set_num_threads(2)
    rng = np.random.RandomState(0)
    X_fit = rng.randn(256, length).astype(dtype)
    clf = S4Classifier(d_model=8, n_layers=1, d_state=8, max_epochs=1,
                       device="cpu", random_state=0).fit(X_fit, X_fit[:, 0] > 0)
    X = np.empty((rows, length), dtype=dtype)
    generator = np.random.default_rng(0)
    for start in range(0, rows, 10000):  # filled in blocks: no float64 temporary
        X[start:start + 10000] = generator.standard_normal(
            (min(10000, rows - start), length), dtype=np.float32)
    clf.set_params(predict_batch_size=predict_batch_size)
    _reset_peak()
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    clf.predict(X)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return {"input_gib": X.nbytes / GIB, "before_gib": before / 2**20,
            "growth_gib": (peak - before) / 2**20, "peak_gib": peak / 2**20,
            "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200000)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # one child run
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.rows, args.length, args.dtype, args.measure)))
        return
    print(f"predict on {args.rows} x {args.length} {args.dtype}")
    print("| predict_batch_size | X GiB | growth GiB | growth / X | peak GiB | peak / X "
          "| seconds |")
    print("|---|---|---|---|---|---|---|")
    for batch_size in (256, args.rows):
        command = [sys.executable, __file__, "--rows", str(args.rows), "--length",
                   str(args.length), "--dtype", args.dtype, "--measure", str(batch_size)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True,
                                           text=True).stdout.splitlines()[-1])
        size = result["input_gib"]
        print(f"| {batch_size} | {size:.2f} | {result['growth_gib']:.2f} | "
              f"{result['growth_gib'] / size:.2f} | {result['peak_gib']:.2f} | "
              f"{result['peak_gib'] / size:.2f} | {result['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
