"""Batches of sequences of similar length, so that padding to a common length stays small."""

import math

import numpy as np
import torch
from torch.utils.data import Sampler

BATCHES_PER_GROUP = 50  # batches in a group of sequences sorted by length together


class LengthGroupedBatchSampler(Sampler):
    """Batch sampler grouping indices of sequences of similar length.

    For ``torch.utils.data.DataLoader(dataset, batch_sampler=...)``. Each epoch, the
    indices are shuffled, cut into groups of about 50 batches (fewer when there are
    fewer than 200 batches, so that batches still mix), each group is sorted by length
    and cut into batches, and the batches are shuffled; the batch holding the longest
    sequence goes first, so that a batch too large for memory fails at once. Every index
    appears exactly once per epoch; only the last batch of the last group can be short.
    With ``drop_last=True`` every batch is full: the indices left over (fewer than a
    batch) are left out of the epoch, a fresh random choice each epoch when shuffling.

    Parameters
    ----------
    lengths : sequence of int
        Length of each sequence of the dataset.
    batch_size : int
        Sequences per batch.
    shuffle : bool, default=True
        Shuffle as above. False: all indices sorted by decreasing length (ties in index
        order) and cut into batches, the same batches in the same order every epoch.
    generator : torch.Generator, optional
        Source of randomness; the batches of an epoch are determined by its state. By
        default a seed is drawn from torch's global generator each epoch.
    drop_last : bool, default=False
        Leave out the ``len(lengths) % batch_size`` indices that would fill a short
        last batch: when shuffling, the last ones of the epoch's random order, else
        those of the shortest sequences.

    Examples
    --------
    >>> import torch
    >>> from s4learn.batching import LengthGroupedBatchSampler
    >>> sampler = LengthGroupedBatchSampler([5, 1, 4, 2, 3], batch_size=2, shuffle=False)
    >>> list(sampler)
    [[0, 2], [4, 3], [1]]
    >>> len(sampler)
    3
    >>> list(LengthGroupedBatchSampler([5, 1, 4, 2, 3], 2, shuffle=False, drop_last=True))
    [[0, 2], [4, 3]]
    """

    def __init__(self, lengths, batch_size, shuffle=True, generator=None, drop_last=False):
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be a 1-d sequence of integers, got shape "
                             f"{lengths.shape} and dtype {lengths.dtype}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.lengths = lengths
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self):
        if self.drop_last:
            return len(self.lengths) // self.batch_size
        return math.ceil(len(self.lengths) / self.batch_size)

    def _kept(self, order):
        """``order`` without its last ``len % batch_size`` entries with ``drop_last``."""
        if not self.drop_last:
            return order
        return order[:len(order) - len(order) % self.batch_size]

    def __iter__(self):
        if not self.shuffle:
            by_length = np.argsort(-self.lengths, kind="stable")
            return iter(self._batches(self._kept(by_length)))
        generator = self.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        order = self._kept(torch.randperm(len(self.lengths), generator=generator).numpy())
        group_size = self.batch_size * min(BATCHES_PER_GROUP, max(1, len(self) // 4))
        batches = [batch for start in range(0, len(order), group_size)
                   for batch in self._batches(order[start:start + group_size])]
        batch_order = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in batch_order]
        longest = max(range(len(batches)),
                      key=lambda b: self.lengths[batches[b]].max(), default=0)
        batches[0], batches[longest] = batches[longest], batches[0]
        return iter(batches)

    def _batches(self, indices):
        """``indices`` sorted by decreasing length (stable) and cut into batches."""
        indices = indices[np.argsort(-self.lengths[indices], kind="stable")]
        return [indices[start:start + self.batch_size].tolist()
                for start in range(0, len(indices), self.batch_size)]


def trim_to_longest(x, lengths):
    """The padded batch ``x`` (batch, length, ...) cut to its longest real sequence.

    Parameters
    ----------
    x : Tensor of shape (batch, length, ...)
        Sequences padded at the end.
    lengths : int Tensor of shape (batch,)
        Real steps of each sequence.

    Returns
    -------
    Tensor of shape (batch, lengths.max(), ...)
        A view of ``x``.

    Examples
    --------
    >>> import torch
    >>> from s4learn.batching import trim_to_longest
    >>> trim_to_longest(torch.zeros(2, 10, 3), torch.tensor([4, 6])).shape
    torch.Size([2, 6, 3])
    """
    longest = int(lengths.max())
    if longest > x.shape[1]:
        raise ValueError(f"lengths go up to {longest}, beyond the padded length "
                         f"{x.shape[1]} of x")
    return x[:, :longest]
