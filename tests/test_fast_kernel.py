"""The fast S4D path against the plain reference path, and the prediction cache."""

import copy
import io
import pickle

import pytest
import torch

from s4learn.nn import S4D
from s4learn.nn.kernel import S4DKernel, vandermonde

RTOL = 1e-5
FLOAT32_RTOL = 5e-5  # a float32 layer's gradients against float64's


def relative_error(actual, expected):
    # in norm: elementwise comparison is meaningless for entries that are sums of
    # cancelling float32 terms
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def assert_close(actual, expected, rtol=RTOL):
    error = relative_error(actual, expected)
    assert error <= rtol, f"relative error {error:.2e}"


def outputs_and_gradients(layer, u, mode):
    layer.mode = mode
    layer.zero_grad()
    u = u.detach().clone().requires_grad_(True)
    y = layer(u)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (y * weights).sum().backward()
    return [y.detach(), u.grad] + [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("init", ["lin", "inv", "legs"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch, length", [(1, 1), (3, 17), (2, 64), (1, 333), (2, 1001)])
def test_fast_layer_equals_plain(init, bidirectional, batch, length):
    torch.manual_seed(0)
    layer = S4D(8, 16, bidirectional=bidirectional, init=init)
    u = torch.randn(batch, length, 8)
    fast = outputs_and_gradients(layer, u, "fast")
    plain = outputs_and_gradients(layer, u, "plain")
    exact = outputs_and_gradients(copy.deepcopy(layer).double(), u.double(), "plain")
    assert len(fast) == len(plain) == 2 + len(list(layer.parameters()))
    # the gradients of dt are sums that cancel: in float32 either path can be 3e-5
    # from the exact (float64) values on long sequences, and 1e-4 at length 1. The
    # fast path must be as close to the exact values as that, or as the plain path.
    for actual, reference, expected in zip(fast, plain, exact):
        expected = expected.float()
        rtol = max(FLOAT32_RTOL, 2 * relative_error(reference, expected))
        assert_close(actual, expected, rtol=rtol)


@pytest.mark.parametrize("chunk", [1, 5, 64, 150, 256])  # 150, 256: one chunk
def test_vandermonde_chunks(chunk):
    torch.manual_seed(0)
    kernel = S4DKernel(4, 8, channels=2)
    dtA, dB, C = kernel.discretize()
    W = C * dB
    args = (dtA.real, dtA.imag, W.real, W.imag)
    K = vandermonde(*args, 150, chunk=chunk)
    grads = torch.autograd.grad((K ** 2).sum(), args)
    dA_pow = torch.exp(torch.complex(*args[:2]).unsqueeze(-1) * torch.arange(150))
    K_ref = 2 * torch.einsum("chn,hnl->chl", torch.complex(*args[2:]), dA_pow).real
    grads_ref = torch.autograd.grad((K_ref ** 2).sum(), args)
    assert_close(K, K_ref)
    for actual, expected in zip(grads, grads_ref):
        assert_close(actual, expected)


def test_long_kernel_and_its_gradients_are_float64_accurate():
    # 20000 steps, slow modes (dt down to 1e-4): exp(dtA l) over long lags is where
    # float32 loses most; the block powers keep the kernel and gradients within 1e-5
    torch.manual_seed(0)
    dtA, dB, C = S4DKernel(8, 64, dt_min=1e-4, dt_max=1.0).discretize()
    W = C * dB
    args = [t.detach() for t in (dtA.real, dtA.imag, W.real, W.imag)]
    G = torch.randn(1, 8, 20000)

    def kernel_and_gradients(arguments, exact):
        arguments = [a.clone().requires_grad_(True) for a in arguments]
        if exact:
            powers = torch.exp(torch.complex(*arguments[:2]).unsqueeze(-1)
                               * torch.arange(20000, dtype=torch.float64))
            K = 2 * torch.einsum("chn,hnl->chl", torch.complex(*arguments[2:]), powers).real
        else:
            K = vandermonde(*arguments, 20000)
        return [K] + list(torch.autograd.grad((K * G.to(K.dtype)).sum(), arguments))

    fast = kernel_and_gradients(args, exact=False)
    exact = kernel_and_gradients([a.double() for a in args], exact=True)
    for actual, expected in zip(fast, exact):
        assert_close(actual.detach(), expected.detach().float())


def test_fast_kernel_float64():
    torch.manual_seed(0)
    kernel = S4DKernel(4, 8).to(torch.float64)
    K = kernel(300)
    assert K.dtype == torch.float64
    assert torch.allclose(K, kernel.vandermonde_kernel(300), rtol=1e-10, atol=1e-12)


def test_mode_is_validated():
    with pytest.raises(ValueError, match="mode"):
        S4DKernel(4, 8, mode="quick")


def test_cached_prediction_equals_uncached():
    torch.manual_seed(0)
    layer = S4D(8, 16, bidirectional=True).eval()
    u = torch.randn(2, 50, 8)
    with torch.no_grad():
        first, second = layer(u), layer(u)
        assert layer.kernel.is_cached
    uncached = layer(u).detach()  # autograd enabled: no cache
    layer.mode = "plain"
    with torch.no_grad():
        plain = layer(u)
    assert torch.equal(first, second)
    # the autograd path returns (B, L, H)-contiguous tensors: same values up to rounding
    torch.testing.assert_close(first, uncached, rtol=1e-6, atol=1e-7)
    assert_close(first, plain)


def test_cache_only_without_autograd():
    kernel = S4DKernel(4, 8)
    kernel(20)
    assert not kernel.is_cached
    with torch.no_grad():
        K = kernel(20)
        assert kernel(20) is K
        assert kernel(21) is not K
        assert kernel(21).shape == (1, 4, 21)


def cached_kernel(kernel, L=20):
    with torch.no_grad():
        return kernel(L)


def test_cache_dropped_after_optimizer_step():
    kernel = S4DKernel(4, 8)
    optimizer = torch.optim.SGD(kernel.parameters(), lr=0.1)
    K = cached_kernel(kernel)
    kernel(20).sum().backward()
    optimizer.step()
    K_new = cached_kernel(kernel)
    assert K_new is not K and not torch.equal(K_new, K)
    assert torch.equal(K_new, kernel.fast_kernel(20).detach())


def test_cache_dropped_after_load_state_dict():
    kernel, other = S4DKernel(4, 8), S4DKernel(4, 8)
    K = cached_kernel(kernel)
    kernel.load_state_dict(other.state_dict())
    assert "_cache" not in str(list(kernel.state_dict()))
    assert torch.equal(cached_kernel(kernel), cached_kernel(other))
    assert not torch.equal(cached_kernel(kernel), K)


def test_cache_dropped_after_to():
    kernel = S4DKernel(4, 8)
    K = cached_kernel(kernel)
    kernel.to(torch.float64)
    K64 = cached_kernel(kernel)
    assert K64.dtype == torch.float64
    kernel.to(torch.float32)
    assert cached_kernel(kernel) is not K64
    assert cached_kernel(kernel).dtype == torch.float32
    assert_close(cached_kernel(kernel), K)


def test_cache_follows_parametrization():
    class Shift(torch.nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.delta = torch.nn.Parameter(torch.zeros(shape))

        def forward(self, X):
            return X + self.delta

    kernel = S4DKernel(4, 8)
    K = cached_kernel(kernel)
    torch.nn.utils.parametrize.register_parametrization(kernel, "C", Shift(kernel.C.shape))
    assert torch.equal(cached_kernel(kernel), K)
    with torch.no_grad():
        kernel.parametrizations.C[0].delta.add_(1.0)
    assert not torch.equal(cached_kernel(kernel), K)
    assert_close(cached_kernel(kernel), kernel.vandermonde_kernel(20).detach())


def test_cache_not_pickled_and_copies_work():
    layer = S4D(8, 16).eval()
    u = torch.randn(1, 30, 8)
    with torch.no_grad():
        y = layer(u)
    assert layer.kernel.is_cached and layer.is_cached
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)  # a whole module, not only weights
    for clone in (saved, pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert not clone.kernel.is_cached and not clone.is_cached
        with torch.no_grad():
            assert torch.equal(clone(u), y)
    assert layer.kernel.is_cached


def test_layer_cache_dropped_after_optimizer_step():
    torch.manual_seed(0)
    layer = S4D(8, 16).eval()
    u = torch.randn(2, 30, 8)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    with torch.no_grad():
        y = layer(u)
    layer(u).sum().backward()
    optimizer.step()
    with torch.no_grad():
        y_new = layer(u)
    assert not torch.equal(y_new, y)
    assert_close(y_new, layer(u).detach())
