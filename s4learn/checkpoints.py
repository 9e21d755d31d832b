"""Checkpoints of a training run, written atomically at the end of every epoch.

A checkpoint holds only tensors and plain values (numbers, strings, lists, dicts),
written with ``torch.save`` and read with ``torch.load(weights_only=True)``: reading one
never runs code from the file, as unpickling would.
"""

import json
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

FORMAT = "s4learn-checkpoint"
FORMAT_VERSION = 1


class EpochCheckpoint(Callback):
    """Save the training state at the end of every epoch, and again when its epoch is best.

    Each checkpoint is a dict ``{"format", "format_version", "net", "torch_rng_state",
    "epoch", "settings"}`` (and ``"cuda_rng_state"`` when training runs on CUDA)
    written with :func:`atomic_save`, so a process killed at any moment leaves the
    previous complete file. ``net`` (see :func:`net_state`) holds the
    network's and the optimizer's state, the history and the callbacks' fitted state
    (early stopping's included); with the generator states it lets
    ``S4Classifier.resume_fit`` / ``S4Regressor.resume_fit`` finish the run as if it had
    not stopped. The data are not saved.

    Parameters
    ----------
    last_path : str or path
        File rewritten after every epoch.
    best_path : str or path or None, default=None
        File rewritten after each epoch with the lowest validation loss so far (the
        lowest training loss when there are no validation data).
    settings : dict or None, default=None
        What produced the run (the command line's options), plain values only, saved
        with every checkpoint so that a resumed run can check it repeats them.
    """

    def __init__(self, last_path, best_path=None, settings=None):
        self.last_path = last_path
        self.best_path = best_path
        self.settings = settings

    def on_epoch_end(self, net, **kwargs):
        state = {"format": FORMAT, "format_version": FORMAT_VERSION, "net": net_state(net),
                 **rng_states(net.device), "epoch": len(net.history),
                 "settings": self.settings}
        atomic_save(state, self.last_path)
        if self.best_path is not None and _is_best_epoch(net):
            atomic_copy(self.last_path, self.best_path)


def rng_states(device):
    """The states of torch's generators that training on ``device`` draws from.

    ``{"torch_rng_state"}`` (the CPU generator: shuffling, and dropout on the CPU), and
    ``"cuda_rng_state"`` of the device's generator (dropout on the GPU) when ``device``
    is a CUDA device.
    """
    states = {"torch_rng_state": torch.get_rng_state()}
    if str(device).startswith("cuda"):
        states["cuda_rng_state"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states, device):
    """Restore what :func:`rng_states` saved; a CUDA state only when ``device`` is CUDA."""
    torch.set_rng_state(states["torch_rng_state"])
    if "cuda_rng_state" in states and str(device).startswith("cuda"):
        torch.cuda.set_rng_state(states["cuda_rng_state"], device)


def _is_best_epoch(net):
    row = net.history[-1]
    key = "valid_loss_best" if "valid_loss_best" in row else "train_loss_best"
    return bool(row.get(key, False))


def net_state(net):
    """What a resumed fit needs from a skorch net, as tensors and plain values.

    ``{"module", "optimizer"}``: the state dicts; ``"history"``: the epochs' records;
    ``"callbacks"``: each callback's fitted attributes (names ending in ``_``) that are
    numbers, strings, tensors or state dicts, such as early stopping's count of epochs
    without improvement and its best weights.
    """
    return {"module": net.module_.state_dict(), "optimizer": net.optimizer_.state_dict(),
            "history": json.loads(json.dumps(list(net.history), default=_plain_number)),
            "callbacks": {name: _callback_state(callback)
                          for name, callback in net.callbacks_}}


def restore_net_state(net, state):
    """Put a :func:`net_state` back into ``net``, built as the checkpointed one was."""
    net.module_.load_state_dict(state["module"])
    net.optimizer_.load_state_dict(state["optimizer"])
    net.history = History(state["history"])
    callbacks = dict(net.callbacks_)
    for name, attributes in state["callbacks"].items():
        for attribute, value in attributes.items():
            if name in callbacks:
                setattr(callbacks[name], attribute, value)


def _plain_number(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"cannot save a {type(value).__name__} in a checkpoint's history")


def _callback_state(callback):
    state = {}
    for name, value in vars(callback).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        is_state_dict = isinstance(value, dict) and all(
            isinstance(key, str) and isinstance(item, torch.Tensor)
            for key, item in value.items())
        if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)) \
                or is_state_dict:
            state[name] = value
    return state


def atomic_save(value, path):
    """Write ``value`` with ``torch.save`` to ``path``, never leaving it half written."""
    with atomic_write(path) as file:
        torch.save(value, file)


def atomic_copy(source, path):
    """Copy the file ``source`` to ``path``, never leaving ``path`` half written."""
    with open(source, "rb") as original, atomic_write(path) as file:
        shutil.copyfileobj(original, file)


def atomic_write(path):
    """A binary file to write ``path`` through, never leaving it half written.

    Use it as ``with atomic_write(path) as file: ...``: the bytes go to a temporary file
    beside ``path``, which is flushed, synced and moved onto ``path`` when the block
    ends without an error, and removed when it raises.
    """
    return _TemporaryFile(Path(path))


class _TemporaryFile:
    """A temporary file beside ``path``, flushed, synced and moved onto ``path`` on exit.

    It is created with the permissions of any new file (``0o666`` less the umask, so
    usually readable by others), not ``mkstemp``'s owner-only ``0o600``; its name is
    ``.NAME.<random>.tmp`` (:func:`remove_stale_temporaries` finds those of a killed run).
    """

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
        handle = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


def remove_stale_temporaries(path):
    """Remove the temporary files that a killed writer of ``path`` left beside it."""
    path = Path(path)
    for temporary in path.parent.glob(f".{path.name}.*.tmp"):
        temporary.unlink(missing_ok=True)


def load_checkpoint(path):
    """Read a checkpoint written by :class:`EpochCheckpoint`; nothing in it is run.

    Raises
    ------
    ValueError
        If ``path`` is not such a checkpoint: damaged, another file, or a pickle (which
        would have to run code from the file to be read, and is never loaded).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # refused objects and damaged files raise many error types
        raise ValueError(
            f"{os.fspath(path)} is damaged or not an s4learn checkpoint: a checkpoint "
            f"holds only tensors and plain values, and a file holding other Python "
            f"objects (a pickle) is never loaded, since that could run code from it") \
            from None
    if not (isinstance(state, dict) and state.get("format") == FORMAT
            and isinstance(state.get("net"), dict)):
        raise ValueError(f"{os.fspath(path)} is not an s4learn checkpoint (a dict with its "
                         f"format and the net's state under 'net')")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{os.fspath(path)} was written by a newer s4learn (checkpoint "
                         f"format {state['format_version']}); upgrade s4learn to resume it")
    return state
