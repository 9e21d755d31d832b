"""The skorch training engine behind the estimators: one net, callbacks for the rest."""

import math
import re
import sys
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.metrics import r2_score
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, PrintLog
from skorch.utils import to_tensor
from torch.utils.data import DataLoader, Subset, default_collate

from .batching import LengthGroupedBatchSampler, trim_to_longest
from .nn import param_groups

MAX_SEED = 2**31 - 1  # seeds drawn for torch and for splits stay below the int32 limit


class S4Net(NeuralNet):
    """skorch ``NeuralNet`` with SSM-aware optimizer groups and weighted losses.

    - The optimizer gets :func:`s4learn.nn.param_groups`: the SSM parameters keep
      their own learning rate and no weight decay; frozen parameters are left out.
    - ``X`` may be a dict ``{"x": sequences, "sample_weight": weights}``; the module
      sees only ``x`` and the per-sample losses (criterion with ``reduction="none"``)
      are weighted before averaging.
    - The epoch table is :class:`PlainPrintLog`'s.
    """

    def get_default_callbacks(self):
        return [(name, PlainPrintLog() if name == "print_log" else callback)
                for name, callback in super().get_default_callbacks()]

    def initialize_optimizer(self, *args, **kwargs):
        settings = self.get_params_for("optimizer")
        lr = settings.pop("lr", self.lr)
        weight_decay = settings.pop("weight_decay", 0.0)
        groups = param_groups(self.module_, lr, weight_decay)
        self.optimizer_ = self.optimizer(groups, lr=lr, weight_decay=weight_decay, **settings)
        return self

    def get_iterator(self, dataset, training=False):
        """skorch's loader; sequences of unequal lengths go in batches trimmed to the
        longest in each, and training batches group sequences of similar length."""
        lengths = _dataset_lengths(dataset)
        if lengths is None:
            return super().get_iterator(dataset, training=training)
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        shuffle = kwargs.pop("shuffle", False)
        if training:
            sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle)
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=_trimmed_batch,
                              **kwargs)
        return DataLoader(dataset, batch_size=batch_size, collate_fn=_trimmed_batch,
                          **kwargs)

    def infer(self, x, **fit_params):
        if isinstance(x, Mapping):
            if "lengths" in x:
                fit_params = {**fit_params, "lengths": x["lengths"]}
            x = x["x"]
        return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.device)
        loss = self.criterion_(y_pred, y_true)
        if loss.dim() > 1:
            loss = loss.flatten(1).mean(dim=1)
        if isinstance(X, Mapping) and "sample_weight" in X:
            loss = loss * to_tensor(X["sample_weight"], device=self.device)
        return loss.mean()


def _dataset_lengths(dataset):
    """The ``lengths`` of a dataset of ``{"x", "lengths", ...}`` (or a subset of one)."""
    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, dataset.indices
    X = getattr(dataset, "X", None)
    if not isinstance(X, Mapping) or "lengths" not in X:
        return None
    lengths = np.asarray(X["lengths"])
    return lengths if indices is None else lengths[np.asarray(indices)]


def _trimmed_batch(samples):
    X, y = default_collate(samples)
    X["x"] = trim_to_longest(X["x"], X["lengths"])
    return X, y


class PlainPrintLog(PrintLog):
    """skorch's per-epoch table, without its colour codes when stdout is no terminal.

    Logs written to a file or a pipe then read as plain text; on a terminal the best
    scores stay highlighted.
    """

    ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")

    def table(self, row):
        text = super().table(row)
        return text if sys.stdout.isatty() else self.ANSI_CODE.sub("", text)


class CosineLR(Callback):
    """Cosine decay of every parameter group's learning rate, set once per epoch.

    Epoch ``e`` of a run (counted from ``start_epoch``) trains at
    ``lr * (1 + cos(pi * e / total_epochs)) / 2``; ``total_epochs=None`` keeps ``lr``.
    Each group's starting rate is kept in the optimizer's state (``initial_lr``), so a
    resumed optimizer continues the same schedule.
    """

    def __init__(self, total_epochs=None, start_epoch=0):
        self.total_epochs = total_epochs
        self.start_epoch = start_epoch

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1 - self.start_epoch
        factor = 1.0
        if self.total_epochs:
            progress = min(max(epoch, 0) / self.total_epochs, 1.0)
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        for group in net.optimizer_.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
        net.history.record("lr", net.optimizer_.param_groups[0]["lr"])


class ResumableEarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping``, whose state can carry on into a resumed fit.

    skorch resets the count of epochs without improvement, the best score and the best
    weights whenever training begins, and leaves the best weights out of a pickle. Here
    a pickle taken during training (a checkpoint) keeps them, and a fit resumed from it
    sets ``resuming`` so that the saved state is kept: it stops, and restores the best
    epoch, where the uninterrupted fit would have. The best weights are dropped once
    training ends, so a fitted model does not carry a second copy of its network.
    """

    resuming = False

    def on_train_begin(self, net, **kwargs):
        if self.resuming:
            self.resuming = False
            return
        super().on_train_begin(net, **kwargs)

    def on_train_end(self, net, **kwargs):
        super().on_train_end(net, **kwargs)
        self.best_model_weights_ = None

    def __getstate__(self):
        return self.__dict__.copy()


def valid_accuracy(net, X, y):
    """Share of validation samples whose most likely class is the true one."""
    logits = net.forward(X)
    return float((logits.argmax(dim=1).numpy() == np.asarray(y)).mean())


def valid_r2(net, X, y):
    """:func:`~sklearn.metrics.r2_score` on the validation samples (averaged over outputs;
    an output whose target is constant scores 1 when predicted exactly, else 0)."""
    y_pred = net.forward(X).numpy()
    return float(r2_score(np.asarray(y).reshape(y_pred.shape), y_pred))


def resolve_device(device):
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'; anything else unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
