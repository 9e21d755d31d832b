"""Length-grouped batches: a partition of the indices, with little padding."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from s4learn.batching import LengthGroupedBatchSampler, trim_to_longest


def spread_lengths(n=5000, seed=0):
    return np.random.default_rng(seed).integers(10, 2001, size=n)


def padding(lengths, batches):
    """Padded steps when each batch is padded to its own longest sequence."""
    return sum(int((lengths[b].max() - lengths[b]).sum()) for b in batches)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n, batch_size", [(5000, 32), (1, 4), (10, 3), (64, 64), (513, 8)])
def test_every_index_exactly_once_in_full_batches(n, batch_size, shuffle):
    generator = torch.Generator().manual_seed(0)
    sampler = LengthGroupedBatchSampler(spread_lengths(n), batch_size, shuffle=shuffle,
                                        generator=generator)
    batches = list(sampler)
    assert len(batches) == len(sampler) == -(-n // batch_size)
    assert sorted(i for batch in batches for i in batch) == list(range(n))
    sizes = sorted(len(batch) for batch in batches)
    assert all(size == batch_size for size in sizes[1:])
    assert sizes[0] == n - batch_size * (len(batches) - 1)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n, batch_size", [(5000, 32), (10, 3), (64, 64), (513, 8)])
def test_drop_last_leaves_out_the_remainder_only(n, batch_size, shuffle):
    sampler = LengthGroupedBatchSampler(spread_lengths(n), batch_size, shuffle=shuffle,
                                        generator=torch.Generator().manual_seed(0),
                                        drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == n // batch_size
    assert all(len(batch) == batch_size for batch in batches)
    indices = [i for batch in batches for i in batch]
    assert len(set(indices)) == len(indices) == n - n % batch_size


def test_drop_last_leaves_out_different_samples_each_epoch():
    lengths = spread_lengths(100)
    sampler = LengthGroupedBatchSampler(lengths, 12, drop_last=True,
                                        generator=torch.Generator().manual_seed(0))
    left_out = [frozenset(range(100)) - {i for batch in sampler for i in batch}
                for _ in range(20)]
    assert all(len(out) == 4 for out in left_out)
    assert len(set(left_out)) == 20
    assert len(frozenset().union(*left_out)) > 40  # not always the same few, nor the shortest


def test_drop_last_without_shuffle_leaves_out_the_shortest():
    sampler = LengthGroupedBatchSampler([5, 1, 4, 2, 3], 2, shuffle=False, drop_last=True)
    assert list(sampler) == [[0, 2], [4, 3]]


@pytest.mark.parametrize("shuffle", [True, False])
def test_padding_much_smaller_than_padding_to_the_longest(shuffle):
    lengths = spread_lengths()
    sampler = LengthGroupedBatchSampler(lengths, 32, shuffle=shuffle,
                                        generator=torch.Generator().manual_seed(0))
    to_the_longest = int((lengths.max() - lengths).sum())
    random_batches = np.array_split(np.random.default_rng(1).permutation(len(lengths)),
                                    len(sampler))
    assert padding(lengths, list(sampler)) < 0.05 * to_the_longest
    assert padding(lengths, list(sampler)) < 0.05 * padding(lengths, random_batches)


def test_longest_sequence_in_first_batch():
    lengths = spread_lengths(1000)
    generator = torch.Generator().manual_seed(3)
    sampler = LengthGroupedBatchSampler(lengths, 16, generator=generator)
    assert lengths.argmax() in next(iter(sampler))


def test_same_seed_same_batches_and_epochs_differ():
    lengths = spread_lengths(2000)

    def epochs(seed):
        sampler = LengthGroupedBatchSampler(lengths, 16,
                                            generator=torch.Generator().manual_seed(seed))
        return list(sampler), list(sampler)

    first, second = epochs(7)
    assert epochs(7) == (first, second)
    assert first != second
    assert epochs(8)[0] != first


def test_without_shuffle_the_order_is_fixed_and_sorted():
    lengths = spread_lengths(300)
    sampler = LengthGroupedBatchSampler(lengths, 16, shuffle=False)
    batches = list(sampler)
    assert list(sampler) == batches
    flat = [i for batch in batches for i in batch]
    assert list(lengths[flat]) == sorted(lengths, reverse=True)


def test_data_loader_batches_trimmed_to_their_longest_sequence():
    lengths = torch.tensor([3, 8, 2, 7, 1, 4])
    x = torch.randn(6, 10, 2)
    sampler = LengthGroupedBatchSampler(lengths.numpy(), 2,
                                        generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(x, lengths, torch.arange(6)), batch_sampler=sampler)
    seen = []
    for x_batch, length_batch, index_batch in loader:
        trimmed = trim_to_longest(x_batch, length_batch)
        assert trimmed.shape == (len(index_batch), int(length_batch.max()), 2)
        torch.testing.assert_close(trimmed, x[index_batch, :int(length_batch.max())])
        seen += index_batch.tolist()
    assert sorted(seen) == list(range(6))


@pytest.mark.parametrize("lengths, batch_size, match", [
    ([[1, 2]], 2, "1-d sequence of integers"),
    ([1.5, 2.0], 2, "1-d sequence of integers"),
    ([1, 2], 0, "batch_size must be a positive integer"),
    ([1, 2], 2.0, "batch_size must be a positive integer"),
])
def test_bad_arguments_are_rejected(lengths, batch_size, match):
    with pytest.raises(ValueError, match=match):
        LengthGroupedBatchSampler(lengths, batch_size)


def test_trim_rejects_lengths_beyond_the_padding():
    with pytest.raises(ValueError, match="beyond the padded length 5"):
        trim_to_longest(torch.zeros(2, 5, 1), torch.tensor([6, 2]))


def test_fast_length_is_the_next_5_smooth_number():
    from s4learn.nn.layer import fast_length

    def is_5_smooth(n):
        for prime in (2, 3, 5):
            while n % prime == 0:
                n //= prime
        return n == 1

    for n in range(1, 3000):
        expected = next(m for m in range(n, 2 * n + 1) if is_5_smooth(m))
        assert fast_length(n) == expected
