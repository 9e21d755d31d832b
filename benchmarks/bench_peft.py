"""Fine-tuning methods on the deep-S4 synthetic task (Galim et al., 2025).

A random deep S4 base network is fine-tuned to regress the output of another random
deep S4 network (:func:`s4learn.datasets.make_deep_s4_regression`) with each method;
the table gives the share of trainable parameters and the test MSE (targets have
variance 1), averaged over seeds.

Run ``python benchmarks/bench_peft.py`` (a few minutes on 2 CPU cores).
"""

import argparse
import time

import numpy as np
import torch

from s4learn import S4Regressor
from s4learn.datasets import make_deep_s4_regression
from s4learn.peft import LoRA, SDLoRA


def methods(lora_rank):
    """(name, finetune) pairs; None is full fine-tuning."""
    return [
        ("frozen base (head only)", LoRA(lp_method="freeze")),
        ("LoRA on projections", LoRA(lora_rank=lora_rank)),
        ("LoRA on SSM + projections", LoRA(lora_rank=lora_rank, ssm_method="lora")),
        ("SDLoRA", SDLoRA(lora_rank=max(1, lora_rank // 2))),
        ("full fine-tuning", None),
    ]


def run(seed, args):
    X, y, base = make_deep_s4_regression(
        n_samples=args.n_samples + 1000, seq_len=args.seq_len, d_model=args.d_model,
        random_state=seed)
    X_train, y_train, X_test, y_test = X[:args.n_samples], y[:args.n_samples], \
        X[args.n_samples:], y[args.n_samples:]
    rows = []
    for name, finetune in methods(args.lora_rank):
        model = S4Regressor(pretrained=base, finetune=finetune, max_epochs=args.epochs,
                            lr=args.lr, batch_size=32, dropout=0.0, device="cpu",
                            random_state=seed)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        mse = float(np.mean((model.predict(X_test) - y_test) ** 2))
        rows.append((name, 100 * model.n_trainable_params_ / model.n_params_, mse, seconds))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = [run(seed, args) for seed in range(args.seeds)]
    print(f"{args.seeds} seeds, {args.n_samples} training sequences of length "
          f"{args.seq_len}, d_model={args.d_model}, {args.epochs} epochs, lr={args.lr}")
    print("| method | trainable % | test MSE (mean ± sd) | fit s |")
    print("|---|---|---|---|")
    for i, (name, *_) in enumerate(results[0]):
        share = np.mean([r[i][1] for r in results])
        mse = np.array([r[i][2] for r in results])
        seconds = np.mean([r[i][3] for r in results])
        print(f"| {name} | {share:.1f} | {mse.mean():.3f} ± {mse.std():.3f} | "
              f"{seconds:.1f} |")


if __name__ == "__main__":
    main()
