"""Checkpoints of a training run, written atomically at the end of every epoch."""

import os
import shutil
import tempfile
from pathlib import Path

import joblib
import torch
from skorch.callbacks import Callback


class EpochCheckpoint(Callback):
    """Save the net at the end of every epoch, and again when its epoch is the best.

    Each checkpoint is a dict ``{"net", "torch_rng_state", "epoch", "settings"}``
    written with :func:`atomic_dump`, so a process killed at any moment leaves the
    previous complete file. ``net`` holds the module, optimizer, history and callbacks
    (learning-rate schedule and early stopping included); with ``torch_rng_state`` it
    lets ``S4Classifier.resume_fit`` / ``S4Regressor.resume_fit`` finish the run as if
    it had not stopped. The validation data are not saved.

    Parameters
    ----------
    last_path : str or path
        File rewritten after every epoch.
    best_path : str or path or None, default=None
        File rewritten after each epoch with the lowest validation loss so far (the
        lowest training loss when there are no validation data).
    settings : dict or None, default=None
        What produced the run (the command line's options), saved with every checkpoint
        so that a resumed run can check it repeats them.
    """

    def __init__(self, last_path, best_path=None, settings=None):
        self.last_path = last_path
        self.best_path = best_path
        self.settings = settings

    def on_epoch_end(self, net, **kwargs):
        state = {"net": net, "torch_rng_state": torch.get_rng_state(),
                 "epoch": len(net.history), "settings": self.settings}
        train_split, net.train_split = net.train_split, None
        try:
            atomic_dump(state, self.last_path)
        finally:
            net.train_split = train_split
        if self.best_path is not None and _is_best_epoch(net):
            atomic_copy(self.last_path, self.best_path)


def _is_best_epoch(net):
    row = net.history[-1]
    key = "valid_loss_best" if "valid_loss_best" in row else "train_loss_best"
    return bool(row.get(key, False))


def atomic_dump(value, path):
    """Write ``value`` with joblib to ``path`` so that ``path`` is never half written."""
    path = Path(path)
    with _temporary_file(path) as file:
        joblib.dump(value, file)


def atomic_copy(source, path):
    """Copy the file ``source`` to ``path``, never leaving ``path`` half written."""
    path = Path(path)
    with open(source, "rb") as original, _temporary_file(path) as file:
        shutil.copyfileobj(original, file)


class _temporary_file:
    """A temporary file beside ``path``, flushed, synced and moved onto ``path`` on exit."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(dir=self.path.parent,
                                                  prefix=f".{self.path.name}.", suffix=".tmp")
        self.file = os.fdopen(handle, "wb")
        return self.file

    def __exit__(self, error_type, error, traceback):
        try:
            if error_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
        finally:
            self.file.close()
        if error_type is None:
            os.replace(self.temporary, self.path)
        else:
            os.unlink(self.temporary)
        return False


def load_checkpoint(path):
    """Read a checkpoint written by :class:`EpochCheckpoint`."""
    return joblib.load(path)
