"""The S4D layer: SSM convolution, skip D, GELU, dropout, position-wise GLU output."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .dropout import SequenceDropout
from .ensemble import mixing_linear
from .kernel import S4DKernel, cache_key


def fft_length(L):
    """The FFT length of a convolution over ``L`` steps: the smallest number >= 2L
    whose only prime factors are 2, 3 and 5.

    Any length >= 2L gives the same (linear) convolution; a length with a large prime
    factor (2L for a prime L) makes the FFT several times slower.
    """
    return fast_length(2 * L)


def fast_length(n):
    """The smallest number >= ``n`` whose only prime factors are 2, 3 and 5."""
    best = 1 << max(n - 1, 0).bit_length()  # a power of 2
    power3 = 1
    while power3 < best:
        power35 = power3
        while power35 < best:
            candidate = power35 << max(math.ceil(math.log2(n / power35)), 0)
            best = min(best, candidate)
            power35 *= 5
        power3 *= 3
    return best


def circular_kernel(k, L, n):
    """Kernel ``k`` (H, L) or (H, 2L) laid out on a circle of ``n >= 2L`` taps.

    The first L taps are lags 0..L-1; the taps after them (a bidirectional kernel's)
    are lags -L..-1 and go to the end of the circle.
    """
    return torch.cat([k[:, :L], k.new_zeros(k.shape[0], n - k.shape[-1]), k[:, L:]],
                     dim=-1)


def fft_convolution(u, k, n=None):
    """First L steps of the circular convolution of ``u`` (B, L, H) with ``k`` (H, M).

    ``M <= n``, the FFT length (default 2L); with ``n >= 2L`` a kernel of length L
    gives the causal convolution and the last L taps of a length-n kernel act at lags
    -L..-1 (see :func:`circular_kernel`). The backward pass reuses the forward spectra
    and needs one real FFT and one inverse real FFT of batch size (instead of a full
    complex FFT).

    Returns
    -------
    Tensor of shape (B, L, H)
    """
    return _FFTConvolution.apply(u, k, 2 * u.shape[-2] if n is None else n)


def _spectral_convolution(u, k_f, n):
    """:func:`fft_convolution` of ``u`` (B, L, H) with a kernel given by its spectrum
    ``k_f`` of FFT length ``n``."""
    L = u.shape[-2]
    u_f = torch.fft.rfft(u.transpose(-1, -2), n=n)  # (B H n/2+1)
    return torch.fft.irfft(u_f.mul_(k_f), n=n)[..., :L].transpose(-1, -2)


class _FFTConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, k, n):
        L = u.shape[-2]
        u_f = torch.fft.rfft(u.transpose(-1, -2), n=n)  # (B H n/2+1)
        k_f = torch.fft.rfft(k, n=n)  # (H n/2+1)
        ctx.save_for_backward(u_f, k_f)
        ctx.k_length, ctx.n = k.shape[-1], n
        y = torch.fft.irfft(u_f * k_f, n=n)[..., :L]  # (B H L)
        # a (B, L, H)-contiguous result: elementwise kernels on mixed layouts are slow
        return y.transpose(-1, -2).contiguous()

    @staticmethod
    def backward(ctx, grad_y):
        u_f, k_f = ctx.saved_tensors
        n, L = ctx.n, grad_y.shape[-2]
        g_f = torch.fft.rfft(grad_y.transpose(-1, -2), n=n)  # (B H n/2+1)
        grad_u = grad_k = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f * k_f.conj(), n=n)[..., :L]  # (B H L)
            grad_u = grad_u.transpose(-1, -2).contiguous()
        if ctx.needs_input_grad[1]:
            grad_k_f = torch.einsum("bhf,bhf->hf", g_f, u_f.conj())  # (H n/2+1)
            grad_k = torch.fft.irfft(grad_k_f, n=n)[..., :ctx.k_length]
        return grad_u, grad_k, None


class S4D(nn.Module):
    """Diagonal state-space layer mapping (batch, length, d_model) to the same shape.

    Training and batch inference convolve the input with the SSM kernel by FFT;
    :meth:`step` runs the same SSM as a recurrence, one time step at a time.

    Parameters
    ----------
    d_model : int
        Number of channels H.
    d_state : int, default=64
        State size N of each channel's SSM.
    dropout : float, default=0.0
        Dropout after the activation.
    tie_dropout : bool, default=False
        Draw one dropout mask per sequence and channel, shared by all time steps (see
        :class:`~s4learn.nn.dropout.SequenceDropout`), instead of one per element.
    bidirectional : bool, default=False
        Add a second kernel run backwards in time (a non-causal layer).
    init : {"lin", "inv", "legs"}, default="legs"
        Initialisation of the state matrix A (S4D-Lin, S4D-Inv, S4D-LegS).
    dt_min, dt_max : float, default=0.001, 0.1
        Range of the log-uniform initialisation of the step size.
    ssm_lr : float or None, default=0.001
        Learning rate attached to the SSM parameters dt and A (see
        :func:`s4learn.nn.param_groups`).
    mode : {"fast", "plain"}, default="fast"
        How the kernel and the convolution are computed (see :class:`S4DKernel`);
        ``"plain"`` is the reference path. Settable later through :attr:`mode`.
    n_groups : int, default=1
        Independent groups of ``d_model / n_groups`` channels (the members of an
        ensemble): the output projection maps each group to itself only.

    Examples
    --------
    >>> import torch
    >>> from s4learn.nn import S4D
    >>> layer = S4D(d_model=4, d_state=8).eval()
    >>> layer(torch.randn(2, 10, 4)).shape
    torch.Size([2, 10, 4])
    """

    def __init__(self, d_model, d_state=64, dropout=0.0, bidirectional=False, init="legs",
                 dt_min=0.001, dt_max=0.1, ssm_lr=0.001, mode="fast", tie_dropout=False,
                 n_groups=1):
        super().__init__()
        if d_model % n_groups:
            raise ValueError(f"d_model={d_model} does not split into n_groups={n_groups}")
        self.d_model = d_model
        self.n_groups = n_groups
        self.d_state = d_state
        self.bidirectional = bidirectional
        self.kernel = S4DKernel(d_model, d_state, channels=2 if bidirectional else 1,
                                init=init, dt_min=dt_min, dt_max=dt_max, lr=ssm_lr,
                                mode=mode)
        self.D = nn.Parameter(torch.randn(d_model))
        self.activation = nn.GELU()
        self.dropout = SequenceDropout(dropout, tie=tie_dropout)
        self.output_linear = mixing_linear(n_groups, d_model // n_groups,
                                           2 * d_model // n_groups)
        self._cache = None  # (key, kernel spectrum) for prediction; never pickled
        self._step_cache = None  # (key, recurrence) for step, likewise

    @property
    def is_cached(self):
        """Whether the kernel spectrum of prediction is kept for the next call."""
        return self._cache is not None

    @property
    def is_step_cached(self):
        """Whether the recurrence of :meth:`step` is kept for the next step."""
        return self._step_cache is not None

    @property
    def mode(self):
        """``"fast"`` or ``"plain"``: the kernel's :attr:`S4DKernel.mode`."""
        return self.kernel.mode

    @mode.setter
    def mode(self, mode):
        self.kernel.mode = mode

    def forward(self, u):
        """Apply the layer to ``u`` of shape (batch, length, d_model)."""
        y = self.ssm_convolution(u)
        return self.output(y)

    def ssm_convolution(self, u):
        """The SSM part alone: ``y = K * u + D u``, shapes (B, L, H) -> (B, L, H).

        Always computed in the parameters' precision (float32), also under
        ``torch.autocast``: the kernel's powers ``exp(dtA l)`` and the FFTs lose too
        much accuracy in half precision (and CPU FFTs do not take it).
        """
        with torch.autocast(u.device.type, enabled=False):
            return self._ssm_convolution(u.to(self.D.dtype))

    def _ssm_convolution(self, u):
        if self.mode == "plain":
            return self._plain_convolution(u)
        L = u.shape[-2]
        n = fft_length(L)
        if torch.is_grad_enabled():
            return fft_convolution(u, circular_kernel(self.kernel_with_skip(L), L, n), n)
        key = cache_key(self, L)
        if self._cache is None or self._cache[0] != key:
            k = circular_kernel(self.kernel_with_skip(L), L, n)
            self._cache = (key, torch.fft.rfft(k, n=n))
        return _spectral_convolution(u, self._cache[1], n)

    def kernel_with_skip(self, L):
        """Kernel (H, L) or (H, 2L) with the skip term ``D u`` folded into lag 0."""
        kernels = self.kernel(L)  # (c H L)
        k = torch.cat([kernels[0, :, :1] + self.D.unsqueeze(-1), kernels[0, :, 1:]],
                      dim=-1)  # (H L), D u folded into the lag-0 tap
        if self.bidirectional:
            k = torch.cat([k, kernels[1].flip(-1)], dim=-1)  # (H 2L), lags -L..-1 last
        return k

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = state["_step_cache"] = None
        return state

    def __setstate__(self, state):
        state.setdefault("_step_cache", None)  # pickled before the step cache existed
        state.setdefault("n_groups", 1)  # pickled before ensembles existed
        self.__dict__.update(state)

    def _plain_convolution(self, u):
        L = u.shape[-2]
        k = self.kernel(L)  # (c H L)
        if self.bidirectional:
            # backward kernel sits at negative lags -1..-L of a length-2L circular kernel
            k = F.pad(k[0], (0, L)) + F.pad(k[1].flip(-1), (L, 0))  # (H 2L)
        else:
            k = k[0]  # (H L)
        u_t = u.transpose(-1, -2)  # (B H L)
        k_f = torch.fft.rfft(k, n=2 * L)
        u_f = torch.fft.rfft(u_t, n=2 * L)
        y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]  # (B H L)
        return y.transpose(-1, -2) + u * self.D

    def output(self, y):
        """The layer's output from its convolution ``y`` (B, L, H): activation, dropout
        and the gated output projection (GLU)."""
        y = self.dropout(self.activation(y))
        z = self.output_linear(y).unflatten(-1, (self.n_groups, -1))
        return F.glu(z, dim=-1).flatten(-2)  # each group gated by its own half

    def default_state(self, batch_size, device=None):
        """Zero state for :meth:`step`: complex tensor of shape (batch, H, N/2)."""
        if device is None:
            device = self.D.device
        return torch.zeros(batch_size, self.d_model, self.d_state // 2,
                           dtype=torch.cfloat, device=device)

    def step(self, x_t, state):
        """One recurrent step: ``x_t`` (batch, H) and ``state`` -> ``(y_t, next_state)``.

        In eval mode, stepping through a sequence from :meth:`default_state` gives the
        same outputs as :meth:`forward` on the whole sequence.
        """
        if self.bidirectional:
            raise ValueError("step is undefined for a bidirectional S4D layer: its output "
                             "at time t depends on inputs after t")
        dA, dB, C = self._recurrence()
        state = dA * state + dB * x_t.unsqueeze(-1)  # (B H N/2)
        y = 2 * torch.einsum("hn,bhn->bh", C, state).real + x_t * self.D
        return self.output(y), state

    def _recurrence(self):
        """``(dA, dB, C)`` of :meth:`step`, each (H N/2); cached without autograd."""
        if torch.is_grad_enabled():
            return self._discrete_recurrence()
        key = cache_key(self, "step")
        if self._step_cache is None or self._step_cache[0] != key:
            self._step_cache = (key, self._discrete_recurrence())
        return self._step_cache[1]

    def _discrete_recurrence(self):
        dtA, dB, C = self.kernel.discretize()
        return torch.exp(dtA), dB, C[0]
