"""Turning a pretrained network into the network an estimator fine-tunes."""

import copy
import os

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .nn import S4Model
from .peft import FineTuningMethod, merge_adapters
from .persistence import read_model_file


def load_pretrained(pretrained, allow_pickle=False):
    """``(network, estimator)`` from a fitted estimator, a saved one, or an S4Model.

    ``estimator`` is None when ``pretrained`` is a bare :class:`~s4learn.nn.S4Model`.
    The network is the pretrained object itself, not a copy. A path must be a file
    written by :func:`s4learn.save_model`; joblib/pickle files, which can run code
    when loaded, are read only with ``allow_pickle=True``.
    """
    if isinstance(pretrained, (str, os.PathLike)):
        if not os.path.isfile(pretrained):
            raise ValueError(f"pretrained model file not found: {os.fspath(pretrained)!r}")
        pretrained = read_model_file(pretrained, allow_pickle)
    if isinstance(pretrained, Pipeline):  # SequenceWindows and the estimator
        pretrained = pretrained[-1]
    if isinstance(pretrained, S4Model):
        return pretrained, None
    if hasattr(pretrained, "net_") or hasattr(type(pretrained), "_encode_targets"):
        check_is_fitted(pretrained)
        return pretrained.net_.module_, pretrained
    raise TypeError(f"pretrained must be a fitted S4Classifier or S4Regressor, a path to "
                    f"one saved with s4learn.save_model, or an s4learn.nn.S4Model; got "
                    f"{type(pretrained).__name__}")


def finetuning_network(network, n_channels, n_outputs, keep_head, method, device, warmup,
                       dropout):
    """A copy of ``network`` adapted by ``method`` for data with ``n_channels`` channels.

    Parameters
    ----------
    network : S4Model
        The pretrained network (not modified).
    n_channels, n_outputs : int
        Input channels of the new data and outputs of the new task.
    keep_head : bool
        Keep the pretrained output layer (same task); otherwise a new one.
    method : FineTuningMethod or None
        None trains every parameter (full fine-tuning).
    device : str
        Device to adapt and train on.
    warmup : callable
        ``warmup(network, epochs, lr)``, passed to ``method.adapt``.
    dropout : float
        Dropout rate of the copy's blocks (a training setting, not architecture).

    Returns
    -------
    S4Model
        The network to train.
    """
    if method is not None and not isinstance(method, FineTuningMethod):
        raise TypeError(f"finetune must be a method from s4learn.peft (LoRA, SDLoRA) or "
                        f"None, got {type(method).__name__}")
    if network.encoder.in_features != n_channels:
        raise ValueError(f"the pretrained network reads {network.encoder.in_features} "
                         f"input channels per step, but X has {n_channels}")
    network = merge_adapters(copy.deepcopy(network)).to(device)
    for module in network.modules():
        if isinstance(module, nn.Dropout):
            module.p = dropout
    if not (keep_head and network.decoder.out_features == n_outputs):
        network.decoder = nn.Linear(network.decoder.in_features, n_outputs, device=device)
    if method is not None:
        network = method.adapt(network, warmup)
    return network
