"""The S4D layer and network: recurrence equals convolution, causality, optimizer groups."""

import copy
import math
import pickle

import numpy as np
import pytest
import torch

from s4learn.nn import S4D, S4DKernel, S4Model, param_groups
from s4learn.nn.kernel import init_A
from s4learn.nn.model import padding_mask
from s4learn.nn.norm import SequenceBatchNorm


def run_steps(layer, x):
    state = layer.default_state(x.shape[0])
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1)


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("init", ["lin", "inv", "legs"])
@pytest.mark.parametrize("length,d_state", [(1, 2), (17, 8), (256, 64), (3000, 16)])
def test_step_reproduces_forward(init, length, d_state):
    torch.manual_seed(0)
    layer = S4D(d_model=4, d_state=d_state, init=init, dt_max=0.5).eval()
    x = torch.randn(2, length, 4)
    with torch.no_grad():
        assert relative_error(run_steps(layer, x), layer(x)) < 1e-4


def test_step_follows_parameter_changes_and_pickles_without_its_cache():
    torch.manual_seed(0)
    layer = S4D(d_model=4, d_state=8).eval()
    x = torch.randn(2, 9, 4)
    with torch.no_grad():
        run_steps(layer, x)  # fills the cache
        layer.kernel.log_dt.add_(0.5)  # an optimizer step, in place
        layer.D.mul_(2)
        assert relative_error(run_steps(layer, x), layer(x)) < 1e-4
    assert layer.is_step_cached
    assert not pickle.loads(pickle.dumps(layer)).is_step_cached
    state = layer.default_state(1)
    y, _ = layer.train().step(x[:1, 0].requires_grad_(), state)
    y.sum().backward()  # with autograd the recurrence is built afresh, with gradients
    assert layer.kernel.log_dt.grad is not None


def test_kernel_is_the_impulse_response_of_the_recurrence():
    torch.manual_seed(1)
    kernel = S4DKernel(d_model=3, d_state=8, init="lin")
    dtA, dB, C = kernel.discretize()
    L = 20
    state = torch.zeros(3, 4, dtype=torch.cfloat)
    impulse_response = []
    for t in range(L):
        state = torch.exp(dtA) * state + dB * (1.0 if t == 0 else 0.0)
        impulse_response.append(2 * (C[0] * state).sum(-1).real)
    expected = torch.stack(impulse_response, dim=-1)
    torch.testing.assert_close(kernel(L)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_causality(bidirectional):
    torch.manual_seed(2)
    layer = S4D(d_model=4, d_state=8, bidirectional=bidirectional).eval()
    x = torch.randn(1, 50, 4)
    x_changed = x.clone()
    x_changed[:, 30:] += torch.randn(1, 20, 4)
    with torch.no_grad():
        y, y_changed = layer(x), layer(x_changed)
    past_unchanged = torch.allclose(y[:, :30], y_changed[:, :30], atol=1e-6)
    assert past_unchanged != bidirectional  # a bidirectional layer sees the future
    assert not torch.allclose(y[:, 30:], y_changed[:, 30:], atol=1e-3)


def test_step_on_bidirectional_layer_is_an_error():
    layer = S4D(d_model=4, d_state=8, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        layer.step(torch.zeros(1, 4), layer.default_state(1))


def test_legs_init_matches_hippo_spectrum():
    N = 16
    A = init_A(N, "legs")
    q = np.arange(N)
    r = np.sqrt(2 * q + 1)
    hippo = -np.tril(np.outer(r, r), -1) - np.diag(q + 1)
    normal = hippo + np.outer(np.sqrt(q + 0.5), np.sqrt(q + 0.5))
    eigenvalues = np.linalg.eigvals(normal)
    upper = np.sort(eigenvalues[eigenvalues.imag > 0].imag)
    np.testing.assert_allclose(A.real, -0.5)
    np.testing.assert_allclose(A.imag, upper, rtol=1e-8)


def test_inits_differ_and_bad_init_is_rejected():
    assert not np.allclose(init_A(8, "lin"), init_A(8, "inv"))
    with pytest.raises(ValueError, match="init must be one of"):
        S4DKernel(4, init="hippo")
    with pytest.raises(ValueError, match="d_state must be an even number"):
        S4DKernel(4, d_state=7)


def test_kernel_holds_given_parameters_without_drawing_random_numbers():
    source = S4DKernel(3, 8, channels=2, init="lin")
    parameters = {name: getattr(source, name) for name in S4DKernel.PARAMETER_NAMES}
    rng_state = torch.random.get_rng_state()
    kernel = S4DKernel(3, 8, channels=2, mode="plain", parameters=parameters)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert all(getattr(kernel, name) is tensor for name, tensor in parameters.items())
    assert list(kernel.state_dict()) == list(source.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(kernel(12), source(12))
    with pytest.raises(ValueError, match=r"parameters\['C'\] must have shape \(1, 3, 4, 2\)"):
        S4DKernel(3, 8, parameters=parameters)
    with pytest.raises(ValueError, match="parameters must hold exactly"):
        S4DKernel(3, 8, channels=2, parameters={"C": source.C})


def test_ssm_parameters_get_their_own_learning_rate_and_no_weight_decay():
    model = S4Model(d_input=2, d_output=3, d_model=8, n_layers=2, d_state=4)
    groups = param_groups(model, lr=0.01, weight_decay=0.1)
    by_parameter = {id(p): g for g in groups for p in g["params"]}
    kernel = model.layers[0].kernel
    for parameter in (kernel.log_dt, kernel.log_A_real, kernel.A_imag):
        assert by_parameter[id(parameter)]["lr"] == 0.001
        assert by_parameter[id(parameter)]["weight_decay"] == 0.0
    assert by_parameter[id(kernel.C)]["lr"] == 0.01
    assert by_parameter[id(model.encoder.weight)]["weight_decay"] == 0.1
    small_lr = param_groups(model, lr=1e-4, weight_decay=0.0)
    assert max(g["lr"] for g in small_lr) == 1e-4  # the SSM rate is a ceiling
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize("copy_model", [copy.deepcopy,
                                        lambda m: pickle.loads(pickle.dumps(m))])
def test_ssm_settings_survive_copies(copy_model):
    model = S4Model(d_input=2, d_output=3, d_model=8, n_layers=2, d_state=4)
    copied = copy_model(model)
    groups = param_groups(model, lr=0.01, weight_decay=0.1)
    copied_groups = param_groups(copied, lr=0.01, weight_decay=0.1)
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in copied_groups] == \
        [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups]
    by_parameter = {id(p): g for g in copied_groups for p in g["params"]}
    assert by_parameter[id(copied.layers[1].kernel.A_imag)]["lr"] == 0.001


@pytest.mark.parametrize("prenorm,pool", [(False, "mean"), (True, "last")])
def test_model_maps_sequences_to_outputs(prenorm, pool):
    model = S4Model(d_input=3, d_output=5, d_model=8, n_layers=2, d_state=4,
                    prenorm=prenorm, pool=pool).eval()
    x = torch.randn(4, 12, 3)
    out = model(x)
    assert out.shape == (4, 5)
    if pool == "last":  # a causal model pooled at the last step sees every input
        x2 = x.clone()
        x2[:, 0] += 1.0
        assert not torch.allclose(model(x2), out)


@pytest.mark.parametrize("n_members", [1, 3])
def test_stats_pooling_is_the_statistics_of_each_tap_of_each_member(n_members):
    torch.manual_seed(0)
    model = S4Model(d_input=2, d_output=3, d_model=4, n_layers=2, d_state=4, pool="stats",
                    n_members=n_members).eval()
    x, lengths = torch.randn(3, 9, 2), torch.tensor([9, 4, 1])
    with torch.no_grad():
        pooled = model.pool_time(model._taps(x, padding_mask(lengths, x)), lengths)
        for b, n in enumerate(lengths.tolist()):
            taps = [tap[0].numpy() for tap in model._taps(x[b:b + 1, :n], None)]
            expected = []  # member by member, tap by tap: mean, max, share > 0, std
            for k in range(n_members):
                for tap in taps:
                    member = tap[:, 4 * k:4 * (k + 1)].astype(np.float64)
                    expected += [member.mean(0), member.max(0), (member > 0).mean(0),
                                 np.sqrt(member.var(0) + 1e-5)]
            np.testing.assert_allclose(pooled[b].numpy(), np.concatenate(expected),
                                       rtol=1e-5, atol=1e-5)
    assert model.decoder.in_features == n_members * 4 * 3 * 4  # 4 statistics, 3 taps


def test_sequence_batch_norm_is_batch_norm_of_the_real_steps():
    torch.manual_seed(0)
    x = torch.randn(3, 10, 4) * 3 + 1
    lengths = torch.tensor([10, 6, 2])
    mask = (torch.arange(10) < lengths.unsqueeze(-1)).unsqueeze(-1)
    real = torch.cat([x[b, :n] for b, n in enumerate(lengths)])  # (18, 4)
    norm, reference = SequenceBatchNorm(4), torch.nn.BatchNorm1d(4)
    out, expected = norm(x, mask), reference(real)
    torch.testing.assert_close(out[mask.squeeze(-1)], expected)
    assert (out[~mask.squeeze(-1)] == 0).all()
    torch.testing.assert_close(norm.running_var, reference.running_var)
    norm.eval(), reference.eval()
    step = torch.randn(5, 4)  # one step of 5 streams, as streaming prediction feeds it
    torch.testing.assert_close(norm(step), reference(step))


def test_bad_norm_is_rejected():
    with pytest.raises(ValueError, match=r"norm must be one of \('layer', 'batch'\), "
                                         r"got 'group'"):
        S4Model(d_input=2, d_output=2, norm="group")


@pytest.mark.parametrize("log_differences", [False, True])
def test_differences_are_the_first_difference_of_each_channel(log_differences):
    # with log_differences, also the signed log magnitude asinh(100 z) / asinh(100)
    torch.manual_seed(0)
    model = S4Model(d_input=2, d_output=3, d_model=4, n_layers=1, d_state=4,
                    differences=True, log_differences=log_differences).eval()
    model.difference_norm.running_var.fill_(4.0)  # standardised: divided by 2
    x = torch.randn(2, 6, 2)
    x[0, 3] = x[0, 2] + 1e-3  # a step a thousandth of the typical one
    steps = torch.cat([torch.zeros(2, 1, 2), x[:, 1:] - x[:, :-1]], dim=1)
    z = steps / torch.sqrt(torch.tensor(4.0 + 1e-5))
    views = [x, z]
    if log_differences:
        log_view = torch.asinh(100 * z) / math.asinh(100)
        assert log_view[0, 3, 0] > 15 * z[0, 3, 0] > 0  # small steps magnified
        views.append(log_view)
    assert model.encoder.in_features == 2 * len(views)
    expected = model.encoder(torch.cat(views, dim=-1))
    torch.testing.assert_close(model.encode(x), expected)
    stepped = [model.encode_step(x[:, 0])] + [model.encode_step(x[:, t], x[:, t - 1])
                                              for t in range(1, 6)]
    torch.testing.assert_close(torch.stack(stepped, dim=1), expected)


def test_log_differences_need_differences():
    with pytest.raises(ValueError, match=r"^log_differences=True needs differences=True$"):
        S4Model(d_input=2, d_output=2, differences=False, log_differences=True)


def test_model_pickled_before_log_differences_existed_loads():
    model = S4Model(d_input=3, d_output=2, d_model=4, n_layers=1, d_state=4,
                    differences=True, log_differences=False).eval()
    state = model.__dict__.copy()
    del state["log_differences"]
    old = S4Model.__new__(S4Model)
    old.__setstate__(state)
    x = torch.randn(2, 5, 3)
    assert not old.log_differences
    torch.testing.assert_close(old(x), model(x))


def test_model_pickled_before_differences_existed_loads():
    model = S4Model(d_input=3, d_output=2, d_model=4, n_layers=1, d_state=4,
                    differences=False, log_differences=False).eval()
    state = model.__dict__.copy()
    del state["d_input"], state["differences"], state["log_differences"]
    old = S4Model.__new__(S4Model)
    old.__setstate__(state)
    x = torch.randn(2, 5, 3)
    assert old.d_input == 3 and not old.differences
    torch.testing.assert_close(old(x), model(x))
