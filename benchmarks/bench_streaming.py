"""Streaming prediction against re-running predict on the growing prefix.

A causal S4Classifier (the default width: d_model=64, 4 layers, d_state=64) reads
sequences of LENGTH steps. After every new step it needs the prediction for the
prefix so far: either StreamingPredictor.update on that one step, or predict_proba on
the whole prefix again. Prints a markdown table: per-step latency (median over the
steps, and at the last step) and throughput (stream-steps per second).

    python benchmarks/bench_streaming.py
"""

import copy
import platform
import time

import numpy as np
import torch
from bench_timeseries import earlier_network  # beside this script

from s4learn import S4Classifier
from s4learn.streaming import StreamingPredictor

LENGTH = 256
CHANNELS = 1


def on_prefix(estimator, length):
    """The estimator, reading samples of ``length`` steps (the network takes any length)."""
    prefix = copy.copy(estimator)
    prefix.input_shape_ = (length, CHANNELS)
    prefix.n_features_in_ = length * CHANNELS
    return prefix


def time_each(calls):
    """Seconds taken by each call."""
    times = []
    for call in calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return np.array(times)


def streamed(model, X):
    predictor = StreamingPredictor(model).reset(n_streams=len(X))
    return time_each(lambda t=t: predictor.update(X[:, t:t + 1]) for t in range(LENGTH))


def chunked(model, X):
    predictor = StreamingPredictor(model).reset(n_streams=len(X))
    total = time_each([lambda: predictor.update(X)])[0]
    return np.full(LENGTH, total / LENGTH)


def rerun(model, X):
    models = [on_prefix(model, t) for t in range(1, LENGTH + 1)]
    return time_each(lambda t=t: models[t - 1].predict_proba(X[:, :t])
                     for t in range(1, LENGTH + 1))


def main():
    torch.set_num_threads(1)
    rng = np.random.RandomState(0)
    X = rng.randn(64, LENGTH, CHANNELS).astype(np.float32)
    model = S4Classifier(pretrained=earlier_network(CHANNELS, 2), dropout=0.1, max_epochs=1,
                         device="cpu", random_state=0)
    model.fit(X, (X[:, :, 0].sum(axis=1) > 0).astype(int))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"1 thread; sequences of {LENGTH} steps, d_model=64, 4 layers, d_state=64\n")
    print("| method | streams | per-step latency, median (ms) | at step "
          f"{LENGTH} (ms) | stream-steps/s |")
    print("| --- | --- | --- | --- | --- |")
    for n_streams in (1, 64):
        batch = X[:n_streams]
        StreamingPredictor(model).reset(n_streams).update(batch[:, :8])  # warm up
        on_prefix(model, 8).predict_proba(batch[:, :8])
        for name, measure in (("StreamingPredictor, one step per update", streamed),
                              ("StreamingPredictor, whole sequence in one update", chunked),
                              ("predict_proba on the prefix, after every step", rerun)):
            times = measure(model, batch)
            print(f"| {name} | {n_streams} | {np.median(times) * 1e3:.2f} | "
                  f"{times[-1] * 1e3:.2f} | {n_streams * LENGTH / times.sum():,.0f} |")


if __name__ == "__main__":
    main()
