"""One process of the two-process training in test_distributed.py.

Run as ``torchrun --standalone --nproc_per_node 2 tests/accelerate_worker.py OUT``:
every process fits the same S4Classifier through one Accelerator on the CPU, writes
its weights and its predictions, and the main process alone saves the model.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from s4learn import S4Classifier, save_model


def easy_task(n=240, length=24, seed=0):
    """Two classes of noisy sequences that differ in their mean."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n)
    X = rng.randn(n, length) + 0.7 * y[:, None]
    return X.astype(np.float32), y


SETTINGS = dict(d_model=8, n_layers=1, d_state=8, max_epochs=4,
                batch_size=16, lr=0.02, random_state=0)

if __name__ == "__main__":
    out = Path(sys.argv[1])
    accelerator = Accelerator(cpu=True)
    X, y = easy_task()
    clf = S4Classifier(**SETTINGS, accelerator=accelerator).fit(X, y)
    rank = accelerator.process_index
    torch.save(clf.net_.module_.state_dict(), out / f"weights_{rank}.pt")
    np.save(out / f"proba_{rank}.npy", clf.predict_proba(X))
    if accelerator.is_main_process:
        save_model(clf, out / "model.safetensors")
    np.save(out / f"processes_{rank}.npy", accelerator.num_processes)
