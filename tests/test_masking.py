"""Padded batches with true lengths: each sequence's output equals its output alone."""

import pytest
import torch

from s4learn.nn import S4D, S4Model
from s4learn.nn.model import padding_mask

LENGTHS = [9, 4, 1, 13]


def make_model(bidirectional, pool, mode, prenorm=False, norm="layer", differences=False):
    torch.manual_seed(0)
    model = S4Model(d_input=3, d_output=4, d_model=8, n_layers=2, d_state=8,
                    bidirectional=bidirectional, pool=pool, prenorm=prenorm, norm=norm,
                    differences=differences, log_differences=differences, dt_max=0.5,
                    dropout=0.0)
    for layer in model.layers:
        layer.mode = mode
    return model.eval()


def padded_batch(lengths, padded_length, seed=1):
    """Random sequences of the given lengths, padded at the end with noise (not zeros)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), padded_length, 3, generator=generator)
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("mode", ["fast", "plain"])
@pytest.mark.parametrize("pool", ["mean", "last", "stats"])
@pytest.mark.parametrize("bidirectional, prenorm, norm, differences", [
    (False, False, "layer", False), (True, False, "layer", False),
    (True, True, "layer", False), (False, True, "batch", True),
    (True, False, "batch", False), (True, True, "layer", True)])
def test_padded_sequence_equals_sequence_alone(bidirectional, pool, mode, prenorm, norm,
                                               differences):
    model = make_model(bidirectional, pool, mode, prenorm, norm, differences)
    if norm == "batch" or differences:  # running statistics other than the initial 0, 1
        model.train()
        model(*padded_batch(LENGTHS, 20, seed=2))
        model.eval()
    x, lengths = padded_batch(LENGTHS, 5 * max(LENGTHS))
    with torch.no_grad():
        batched = model(x, lengths)
        alone = torch.cat([model(x[b:b + 1, :n]) for b, n in enumerate(LENGTHS)])
        batched_features = model.features(x, lengths)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)
    padding = ~padding_mask(lengths, x).squeeze(-1)
    assert (batched_features[padding] == 0).all()


@pytest.mark.parametrize("prenorm", [False, True])
def test_batch_norm_statistics_in_training_ignore_padding(prenorm):
    # the same real steps padded with other noise to another length: the same outputs
    model = make_model(True, "mean", "fast", prenorm, norm="batch", differences=True).train()
    x, lengths = padded_batch(LENGTHS, 5 * max(LENGTHS))
    other, _ = padded_batch(LENGTHS, max(LENGTHS), seed=7)
    for b, n in enumerate(LENGTHS):
        other[b, :n] = x[b, :n]
    torch.testing.assert_close(model(x, lengths), model(other, lengths), rtol=1e-5,
                               atol=1e-5)
    running_mean = model.norms[0].running_mean.clone()
    model(x, lengths)
    assert not torch.equal(model.norms[0].running_mean, running_mean)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_changes_the_output_without_lengths(bidirectional):
    # the equality above is the masking's doing: unmasked padding does change outputs
    model = make_model(bidirectional, "mean", "fast")
    x, _ = padded_batch([6], 30)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x[:, :6]), atol=1e-3)


def test_step_over_real_steps_equals_convolution_of_padded_sequence():
    torch.manual_seed(3)
    layer = S4D(d_model=4, d_state=8, dt_max=0.5).eval()
    n_real = 11
    u = torch.randn(1, 5 * n_real, 4)
    u[:, n_real:] = 0  # what S4Model feeds each layer at padded steps
    state = layer.default_state(1)
    stepped = []
    with torch.no_grad():
        for t in range(n_real):
            y_t, state = layer.step(u[:, t], state)
            stepped.append(y_t)
        convolved = layer(u)[:, :n_real]
    torch.testing.assert_close(torch.stack(stepped, dim=1), convolved, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "last", "stats"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_inputs_get_no_gradient(bidirectional, pool):
    model = make_model(bidirectional, pool, "fast").train()
    x, lengths = padded_batch(LENGTHS, 20)
    x.requires_grad_(True)
    model(x, lengths).square().sum().backward()
    real = padding_mask(lengths, x).squeeze(-1)
    assert (x.grad[~real] == 0).all()
    assert (x.grad[real].abs().sum(-1) > 0).all()  # every real step does matter


@pytest.mark.parametrize("pool", ["mean", "last", "stats"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_full_lengths_equal_no_lengths(bidirectional, pool):
    model = make_model(bidirectional, pool, "fast")
    x, lengths = padded_batch([17] * 3, 17)
    with torch.no_grad():
        torch.testing.assert_close(model(x, lengths), model(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(model.features(x, lengths), model.features(x),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lengths, error, match", [
    (torch.tensor([3.0, 2.0]), TypeError, "integer tensor"),
    ([3, 2], TypeError, "integer tensor"),
    (torch.tensor([3, 2, 1]), ValueError, r"shape \(2,\)"),
    (torch.tensor([0, 2]), ValueError, "between 1 and the padded length 5"),
    (torch.tensor([6, 2]), ValueError, "between 1 and the padded length 5"),
])
def test_bad_lengths_are_rejected(lengths, error, match):
    model = make_model(False, "last", "fast")
    with pytest.raises(error, match=match):
        model(torch.randn(2, 5, 3), lengths)
