"""SequenceDropout: one mask per sequence and channel, or per element."""

import pytest
import torch

from s4learn.nn import S4Model, SequenceDropout


def test_tied_mask_is_constant_over_time_and_unbiased():
    torch.manual_seed(0)
    y = SequenceDropout(0.25, tie=True)(torch.ones(400, 50, 8))
    assert torch.equal(y, y[:, :1].expand_as(y))  # the same mask at every step
    torch.testing.assert_close(y.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs(y.mean().item() - 1.0) < 0.03  # kept values scaled by 1 / (1 - p)


def test_untied_mask_varies_over_time():
    torch.manual_seed(0)
    y = SequenceDropout(0.25, tie=False)(torch.ones(4, 50, 8))
    assert not torch.equal(y, y[:, :1].expand_as(y))


def test_untied_mask_drops_at_the_rate_and_is_unbiased():
    torch.manual_seed(0)
    x = torch.ones(40, 100, 25, requires_grad=True)
    y = SequenceDropout(0.3, tie=False)(x)
    torch.testing.assert_close(y.unique(), torch.tensor([0.0, 1 / 0.7]))
    assert abs((y == 0).float().mean().item() - 0.3) < 0.01
    y.sum().backward()  # the gradient passes the kept values, scaled, and only those
    torch.testing.assert_close(x.grad, y.detach())


@pytest.mark.parametrize("tie", [True, False])
def test_eval_mode_and_zero_rate_leave_the_input(tie):
    x = torch.randn(3, 10, 4)
    assert torch.equal(SequenceDropout(0.5, tie=tie).eval()(x), x)
    assert torch.equal(SequenceDropout(0.0, tie=tie)(x), x)


def test_model_ties_every_dropout_and_keeps_the_setting():
    model = S4Model(d_input=2, d_output=3, d_model=8, n_layers=2, d_state=8, dropout=0.3,
                    tie_dropout=True)
    dropouts = [m for m in model.modules() if isinstance(m, SequenceDropout)]
    assert len(dropouts) == 4 and all(d.tie and d.p == 0.3 for d in dropouts)
    rebuilt = S4Model(**model.config)
    assert all(d.tie for d in rebuilt.modules() if isinstance(d, SequenceDropout))
