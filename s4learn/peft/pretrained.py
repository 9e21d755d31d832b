"""A pretrained network turned into the network an estimator fine-tunes."""

import copy

from torch import nn

from ..nn.norm import SequenceBatchNorm
from .adapters import merge_adapters


def finetuning_network(network, n_channels, n_outputs, keep_head, device, dropout):
    """A copy of ``network`` for data with ``n_channels`` channels and ``n_outputs`` outputs.

    Adapters in ``network`` are merged into plain weights, every dropout takes the rate
    ``dropout`` and the output layer is new unless ``keep_head`` and its size fits. A
    :class:`FineTuningMethod` then adapts the copy: see :meth:`FineTuningMethod.warmup_run`
    and :meth:`FineTuningMethod.adapt`.

    Parameters
    ----------
    network : S4Model
        The pretrained network (not modified).
    n_channels, n_outputs : int
        Input channels of the new data and outputs of the new task.
    keep_head : bool
        Keep the pretrained output layer (same task); otherwise a new one.
    device : str
        Device of the copy.
    dropout : float
        Dropout rate of the copy's blocks (a training setting, not architecture).

    Returns
    -------
    S4Model
        The copy, every parameter trainable.
    """
    if network.d_input != n_channels:
        raise ValueError(f"the pretrained network reads {network.d_input} "
                         f"input channels per step, but X has {n_channels}")
    network = merge_adapters(copy.deepcopy(network)).to(device)
    for module in network.modules():
        if isinstance(module, nn.Dropout):
            module.p = dropout
        if isinstance(module, SequenceBatchNorm):
            module.freeze_statistics = False
    if not (keep_head and network.d_output == n_outputs):
        network.decoder = network.new_decoder(n_outputs)
    return network
