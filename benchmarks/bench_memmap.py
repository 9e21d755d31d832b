"""Fit one epoch and predict on a memmap file larger than the memory it is given.

Writes a ``.npy`` file of float32 sequences (n, LENGTH, CHANNELS) in chunks (plain file
writes: the writer never holds more than one chunk), opens it with
``np.load(mmap_mode="r")``, fits a tiny S4Classifier for one epoch and predicts every
sequence. Prints the file size, the peak resident set size of the process
(``ru_maxrss``, which counts memory-mapped pages it touched) and the times.

    python benchmarks/bench_memmap.py [--gib 4] [--dir DIR]

The file needs ``--gib`` GiB of free disk in ``--dir`` (default: the temporary
directory) and 10 GiB free to run at full size; with less, it uses the largest size
that leaves a fifth of the free space and says so.
"""

import argparse
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from s4learn import S4Classifier

LENGTH = 256
CHANNELS = 64  # wide rows: gigabytes of data in few time steps, so an epoch is quick
CHUNK_ROWS = 256  # rows written at a time: 16 MiB
GIB = 2 ** 30


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux


def file_size_gib(requested, directory):
    free = shutil.disk_usage(directory).free / GIB
    print(f"free disk in {directory}: {free:.1f} GiB")
    if free >= 10 or requested <= free * 0.8:
        return requested
    size = int(free * 0.8 * 4) / 4
    print(f"less than 10 GiB free: writing {size} GiB instead of {requested} GiB")
    return size


def write_sequences(path, n, seed=0):
    """Class y in {0, 1}; a sequence is noise plus a sine whose frequency says y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    steps = np.arange(LENGTH, dtype=np.float32)
    with open(path, "wb") as file:
        np.lib.format.write_array_header_2_0(file, {
            "descr": "<f4", "fortran_order": False, "shape": (n, LENGTH, CHANNELS)})
        for start in range(0, n, CHUNK_ROWS):
            rows = y[start:start + CHUNK_ROWS]
            signal = np.sin(steps * np.where(rows, 0.05, 0.02)[:, None].astype(np.float32))
            noise = rng.standard_normal((len(rows), LENGTH, CHANNELS), dtype=np.float32)
            file.write((signal[..., None] + noise).astype(np.float32).tobytes())
    return y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="file size in GiB")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write it")
    args = parser.parse_args()
    torch.manual_seed(0)
    directory = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        size = file_size_gib(args.gib, directory)
        n = int(size * GIB // (LENGTH * CHANNELS * 4))
        started = time.perf_counter()
        y = write_sequences(directory / "x.npy", n)
        X = np.load(directory / "x.npy", mmap_mode="r")
        print(f"file: {n} sequences x {LENGTH} steps x {CHANNELS} channels, "
              f"{X.nbytes / GIB:.2f} GiB, written in {time.perf_counter() - started:.0f} s; "
              f"peak RSS so far {peak_rss_gib():.2f} GiB")
        clf = S4Classifier(d_model=8, n_layers=1, d_state=8, max_epochs=1,
                           batch_size=128, random_state=0, device="cpu")
        started = time.perf_counter()
        clf.fit(X, y)
        fit_s = time.perf_counter() - started
        print(f"fit, one epoch: {fit_s:.0f} s; peak RSS {peak_rss_gib():.2f} GiB")
        started = time.perf_counter()
        accuracy = float((clf.predict(X) == y).mean())
        predict_s = time.perf_counter() - started
        print(f"predict: {predict_s:.0f} s, training accuracy {accuracy:.3f}")
        peak = peak_rss_gib()
        print(f"| file GiB | sequences | fit s | predict s | peak RSS GiB | RSS / file |\n"
              f"| --- | --- | --- | --- | --- | --- |\n"
              f"| {X.nbytes / GIB:.2f} | {n} | {fit_s:.0f} | {predict_s:.0f} | {peak:.2f} | "
              f"{peak * GIB / X.nbytes:.2f} |")
        print(f"machine: {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
