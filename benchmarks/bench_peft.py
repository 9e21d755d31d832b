"""Fine-tuning methods on the deep-S4 synthetic task (Galim et al., 2025).

A random deep S4 base network is fine-tuned to regress the output of another random
deep S4 network (:func:`s4learn.datasets.make_deep_s4_regression`) with each method;
the table gives the share of trainable parameters and the test MSE (targets have
variance 1) over seeds, and how often SDLoRA beat each other method on the same seed.

Run ``python benchmarks/bench_peft.py`` (about three minutes on 2 CPU cores).
"""

import argparse
import time

import numpy as np
import torch

from s4learn import S4Regressor
from s4learn.datasets import make_deep_s4_regression
from s4learn.peft import LoRA, SDLoRA

SDLORA = "SDLoRA"


def methods(lora_rank):
    """(name, finetune) pairs; None is full fine-tuning."""
    return [
        ("frozen base (head only)", LoRA(lp_method="freeze")),
        (f"LoRA on projections, rank {lora_rank}", LoRA(lora_rank=lora_rank)),
        (f"LoRA on projections, rank {2 * lora_rank}", LoRA(lora_rank=2 * lora_rank)),
        ("LoRA on SSM + projections", LoRA(lora_rank=lora_rank, ssm_method="lora")),
        (SDLORA, SDLoRA(lora_rank=max(1, lora_rank // 2))),
        ("full fine-tuning", None),
    ]


def run(seed, args):
    """{method name: (trainable %, test MSE, fit seconds)} for one seed."""
    X, y, base = make_deep_s4_regression(
        n_samples=args.n_samples + args.n_test, seq_len=args.seq_len, d_model=args.d_model,
        frozen_n_layers=args.frozen_n_layers, random_state=seed)
    train, test = slice(None, args.n_samples), slice(args.n_samples, None)
    rows = {}
    for name, finetune in methods(args.lora_rank):
        model = S4Regressor(pretrained=base, finetune=finetune, max_epochs=args.epochs,
                            lr=args.lr, batch_size=32, dropout=0.0, device="cpu",
                            random_state=seed)
        start = time.perf_counter()
        model.fit(X[train], y[train])
        seconds = time.perf_counter() - start
        mse = float(np.mean((model.predict(X[test]) - y[test]) ** 2))
        rows[name] = (100 * model.n_trainable_params_ / model.n_params_, mse, seconds)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seq-len", type=int, default=200)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--frozen-n-layers", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = [run(seed, args) for seed in range(args.seeds)]
    print(f"{args.seeds} seeds, {args.n_samples} training and {args.n_test} test sequences "
          f"of length {args.seq_len}, d_model={args.d_model}, base of "
          f"{args.frozen_n_layers} layers, {args.epochs} epochs, lr={args.lr}")
    print("| method | trainable % | test MSE (mean ± sd) | SDLoRA lower on | fit s |")
    print("|---|---|---|---|---|")
    sdlora = np.array([rows[SDLORA][1] for rows in results])
    for name in results[0]:
        share = np.mean([rows[name][0] for rows in results])
        mse = np.array([rows[name][1] for rows in results])
        seconds = np.mean([rows[name][2] for rows in results])
        wins = "" if name == SDLORA else f"{int((sdlora < mse).sum())} of {len(mse)} seeds"
        print(f"| {name} | {share:.1f} | {mse.mean():.3f} ± {mse.std():.3f} | {wins} "
              f"| {seconds:.1f} |")


if __name__ == "__main__":
    main()
