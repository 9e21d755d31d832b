"""Plain vs fast S4D path: training step, prediction, memory, estimator overhead.

Run ``python benchmarks/bench_s4d.py`` (``--quick`` for fewer repeats). Timings are the
minimum over repeats, plain and fast interleaved so that both see the same load.
"""

import argparse
import subprocess
import sys
import time

import numpy as np
import torch

from s4learn.nn import S4D, S4Model, param_groups

SHAPES = [(32, 64, 128, 64), (32, 784, 128, 64), (16, 1024, 128, 64)]  # (B L H N)
MEMORY_SHAPE = (16384, 256, 64)  # (L H N)


def interleaved_min(functions, repeats, device="cpu"):
    """Minimum wall time (ms) of each function, calls interleaved."""
    def synchronize():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for f in functions:
        f()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for f, ts in zip(functions, times):
            synchronize()
            start = time.perf_counter()
            f()
            synchronize()
            ts.append(time.perf_counter() - start)
    return [1e3 * min(ts) for ts in times]


def layer_timings(B, L, H, N, repeats, device="cpu"):
    """(train plain, train fast, predict plain, predict fast) in ms for one S4D layer."""
    layer = S4D(H, N).to(device)
    u = torch.randn(B, L, H, device=device, requires_grad=True)

    def train(mode):
        def step():
            layer.mode = mode
            layer(u).sum().backward()
        return step

    def predict(mode):
        def step():
            layer.mode = mode
            with torch.no_grad():
                layer(u)
        return step

    return interleaved_min([train("plain"), train("fast"), predict("plain"),
                            predict("fast")], repeats, device)


def peak_memory_growth(setup, warmup, measure):
    """Peak RSS growth (MiB) of the code ``measure``, in a fresh subprocess.

    ``setup`` and ``warmup`` run first; then the peak (VmHWM) is reset through
    ``/proc/self/clear_refs``, so this needs Linux.
    """
    code = "\n".join([
        "import torch",
        "from s4learn.nn import S4D, S4DKernel",
        "def status(field):",
        "    for line in open('/proc/self/status'):",
        "        if line.startswith(field):",
        "            return int(line.split()[1])",
        "torch.set_num_threads(2)",
        setup, warmup,
        "open('/proc/self/clear_refs', 'w').write('5')",
        "base = status('VmRSS')",
        measure,
        "print((status('VmHWM') - base) / 1024)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


def kernel_peak_memory(mode):
    """Peak RSS growth (MiB) of kernel forward+backward at ``MEMORY_SHAPE``."""
    L, H, N = MEMORY_SHAPE
    return peak_memory_growth(f"kernel = S4DKernel({H}, {N}, mode={mode!r})",
                              "kernel(16).sum().backward()",
                              f"kernel({L}).sum().backward()")


def layer_peak_memory(B, L, H, N, mode):
    """Peak RSS growth (MiB) of one S4D layer's training step (input included)."""
    step = "layer(torch.randn({}, {}, {}, requires_grad=True)).sum().backward()"
    return peak_memory_growth(f"layer = S4D({H}, {N}, mode={mode!r})",
                              step.format(B, 16, H), step.format(B, L, H))


def bare_epoch(X, y, model_kwargs, batch_size, lr, weight_decay):
    """Build the network and train it one epoch in a bare PyTorch loop (AdamW, shuffled
    DataLoader), as ``fit`` does; seconds."""
    start = time.perf_counter()
    model = S4Model(**model_kwargs)
    optimizer = torch.optim.AdamW(param_groups(model, lr, weight_decay), lr=lr,
                                  weight_decay=weight_decay)
    data = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def estimator_epoch(X, y, settings):
    """One epoch of ``S4Classifier.fit``: (seconds, the network's constructor arguments)."""
    from s4learn import S4Classifier

    clf = S4Classifier(max_epochs=1, verbose=0, device="cpu", random_state=0, **settings)
    start = time.perf_counter()
    clf.fit(X, y)
    return time.perf_counter() - start, clf.net_.module_.config


OVERHEAD_DATA = (1024, 256)  # (sequences, length): an epoch long enough to time


def estimator_overhead(repeats):
    """Minimum seconds of one epoch: (bare loop, estimator fit), after one warm-up each.

    The bare loop builds the network that the estimator builds (its ``config``).
    """
    rng = np.random.default_rng(0)
    n, L = OVERHEAD_DATA
    X = rng.standard_normal((n, L, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    settings = dict(d_model=64, n_layers=2, d_state=64, batch_size=32, dropout=0.1,
                    min_steps=0)
    _, model_kwargs = estimator_epoch(X, y, settings)
    bare_epoch(X, y, model_kwargs, 32, 0.01, 0.01)
    bare, est = [], []
    for _ in range(repeats):
        bare.append(bare_epoch(X, y, model_kwargs, 32, 0.01, 0.01))
        est.append(estimator_epoch(X, y, settings)[0])
    return min(bare), min(est)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--device", default="cpu",
                        help="device of the layer timings, e.g. cuda; memory and "
                             "estimator overhead are always measured on the CPU")
    args = parser.parse_args()
    repeats = 3 if args.quick else 10
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
          f"layer timings on {args.device}")
    print("| B | L | H | N | train plain ms | train fast ms | ratio "
          "| predict plain ms | predict fast ms | ratio "
          "| train peak plain MiB | train peak fast MiB | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for B, L, H, N in SHAPES:
        tp, tf, pp, pf = layer_timings(B, L, H, N, repeats, args.device)
        mp, mf = (layer_peak_memory(B, L, H, N, mode) for mode in ("plain", "fast"))
        print(f"| {B} | {L} | {H} | {N} | {tp:.1f} | {tf:.1f} | {tf / tp:.2f} "
              f"| {pp:.1f} | {pf:.1f} | {pf / pp:.2f} "
              f"| {mp:.0f} | {mf:.0f} | {mf / mp:.2f} |", flush=True)
    plain, fast = kernel_peak_memory("plain"), kernel_peak_memory("fast")
    L, H, N = MEMORY_SHAPE
    print(f"\nkernel fwd+bwd peak RSS growth, L={L} H={H} N={N}: plain {plain:.0f} MiB, "
          f"fast {fast:.0f} MiB, ratio {fast / plain:.3f}", flush=True)
    bare, est = estimator_overhead(2 if args.quick else 10)
    n, L = OVERHEAD_DATA
    print(f"\none epoch ({n} x {L} x 1, d_model=64, n_layers=2, batch 32): bare loop "
          f"{bare:.2f} s, S4Classifier.fit {est:.2f} s, ratio {est / bare:.2f}")


if __name__ == "__main__":
    main()
