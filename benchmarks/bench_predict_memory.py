"""Peak memory of ``predict`` on a large X, against the size of X.

Run ``python benchmarks/bench_predict_memory.py`` (200000 sequences of 1000 steps,
float32: 0.75 GiB; ``--rows``/``--length``/``--dtype`` change it). Each measurement
runs in a fresh process: a tiny classifier is fitted on 256 sequences, X is made, the
peak resident set (VmHWM) is reset, and ``predict(X)`` runs. Reported: the growth of
the peak over the resident set just before ``predict`` (what prediction itself
holds), and the process's whole peak, each as a multiple of the size of X; for the
``predict_batch_size`` 256 and for one batch of all rows, which is how ``predict``
worked before it went batch by batch (full float32 and scaled copies).

``--long`` measures long sequences instead: the default network (fitted for one
epoch on short sequences) predicts 32 sequences of 65,536 steps (``--length``), with
the default ``predict_batch_size="auto"`` and with fixed batches of 8, 16 and 32
(256 would need about 28 GiB).
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


def fitted_classifier(length, dtype, long):
    """A tiny classifier on tables of ``length`` columns, or with ``long`` the default
    network on sequences of 64 steps (it predicts sequences of any length)."""
    from s4learn import S4Classifier

    rng = np.random.RandomState(0)
    if long:
        X_fit = rng.randn(64, 64, 1).astype(dtype)
        clf = S4Classifier(max_epochs=1, device="cpu", random_state=0)
        return clf.fit(X_fit, X_fit[:, 0, 0] > 0)
    X_fit = rng.randn(256, length).astype(dtype)
    clf = S4Classifier(d_model=8, n_layers=1, d_state=8, max_epochs=1,
                       device="cpu", random_state=0)
    return clf.fit(X_fit, X_fit[:, 0] > 0)


def measure(rows, length, dtype, predict_batch_size, long):
    """One measurement, in this process: a dict of sizes in GiB and seconds."""
    import torch

    torch.set_num_threads(2)
    clf = fitted_classifier(length, dtype, long)
    X = np.empty((rows, length, 1) if long else (rows, length), dtype=dtype)
    generator = np.random.default_rng(0)
    for start in range(0, rows, 10000):  # filled in blocks: no float64 temporary
        X[start:start + 10000] = generator.standard_normal(
            (min(10000, rows - start),) + X.shape[1:], dtype=np.float32)
    if predict_batch_size != "auto":
        predict_batch_size = int(predict_batch_size)
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
    parser.add_argument("--rows", type=int)
    parser.add_argument("--length", type=int)
    parser.add_argument("--long", action="store_true",
                        help="the default network on 32 sequences of 65,536 steps")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one child run
    args = parser.parse_args()
    args.rows = args.rows or (32 if args.long else 200000)
    args.length = args.length or (65536 if args.long else 1000)
    if args.measure is not None:
        print(json.dumps(measure(args.rows, args.length, args.dtype, args.measure,
                                 args.long)))
        return
    print(f"predict on {args.rows} x {args.length} {args.dtype}")
    print("| predict_batch_size | X GiB | growth GiB | growth / X | peak GiB | peak / X "
          "| seconds |")
    print("|---|---|---|---|---|---|---|")
    for batch_size in ("auto", 8, 16, 32) if args.long else (256, args.rows):
        command = [sys.executable, __file__, "--rows", str(args.rows), "--length",
                   str(args.length), "--dtype", args.dtype, "--measure", str(batch_size)]
        command += ["--long"] if args.long else []
        result = json.loads(subprocess.run(command, check=True, capture_output=True,
                                           text=True).stdout.splitlines()[-1])
        size = result["input_gib"]
        print(f"| {batch_size} | {size:.2f} | {result['growth_gib']:.2f} | "
              f"{result['growth_gib'] / size:.2f} | {result['peak_gib']:.2f} | "
              f"{result['peak_gib'] / size:.2f} | {result['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
