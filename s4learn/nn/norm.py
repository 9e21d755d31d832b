"""Normalisation of (batch, length, channels) sequences: per step, or per channel."""

from torch import nn

NORMS = ("layer", "batch")


class SequenceBatchNorm(nn.BatchNorm1d):
    """Batch normalisation of each channel over the batch and the real time steps.

    Takes ``(..., channels)``: sequences ``(batch, length, channels)`` or one step
    ``(batch, channels)``. Training normalises with the mean and variance of the real
    steps of the batch (the steps inside ``mask``; padded steps come out as zero) and
    updates the running statistics; eval mode applies the running statistics, a fixed
    affine map of each channel, so a step's output depends on that step alone.

    Parameters
    ----------
    num_features : int
        Number of channels.
    **kwargs
        Passed on to :class:`torch.nn.BatchNorm1d` (``eps``, ``momentum``).

    Attributes
    ----------
    freeze_statistics : bool
        Keep the running statistics, and normalise with them, in training as well (a
        frozen layer of a network being fine-tuned). False at construction.

    Examples
    --------
    >>> import torch
    >>> from s4learn.nn.norm import SequenceBatchNorm
    >>> norm = SequenceBatchNorm(3)
    >>> y = norm(torch.randn(4, 50, 3) * 5 + 2)
    >>> bool(y.mean(dim=(0, 1)).abs().max() < 1e-5)
    True
    """

    freeze_statistics = False

    def train(self, mode=True):
        return super().train(mode and not self.freeze_statistics)

    def forward(self, x, mask=None):
        flat = x.reshape(-1, x.shape[-1])
        if mask is None:
            return super().forward(flat).reshape(x.shape)
        real = mask.reshape(-1)
        normalized = flat.new_zeros(flat.shape).index_put((real,), super().forward(flat[real]))
        return normalized.reshape(x.shape)


def make_norm(norm, d_model):
    """The normalisation module of one block: ``"layer"`` or ``"batch"``."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return nn.LayerNorm(d_model) if norm == "layer" else SequenceBatchNorm(d_model)


def normalize(norm, x, mask):
    """``norm(x)``, with the padding mask where the module takes one (batch norm)."""
    return norm(x, mask) if isinstance(norm, SequenceBatchNorm) else norm(x)
