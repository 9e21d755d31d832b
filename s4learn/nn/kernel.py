"""The S4D convolution kernel: diagonal state matrices, ZOH discretisation, Vandermonde.

Notation follows Gu et al. (2022), "On the Parameterization and Initialization of
Diagonal State Space Models": H channels (``d_model``), each an independent SSM with
N/2 complex modes (``d_state = N``; the conjugate halves are implied by taking twice
the real part).
"""

import math

import numpy as np
import torch
from torch import nn

INITS = ("lin", "inv", "legs")
MODES = ("fast", "plain")


def init_A(d_state, init):
    """Diagonal state matrix ``A`` of length ``d_state // 2`` for one channel (complex128).

    ``lin``: S4D-Lin, ``-1/2 + i*pi*n``. ``inv``: S4D-Inv,
    ``-1/2 + i*N/pi*(N/(2n+1) - 1)``. ``legs``: the eigenvalues of the normal part of
    HiPPO-LegS (``-1/2 + i*omega``), the diagonal that S4D-LegS uses.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    N = d_state
    n = np.arange(N // 2)
    if init == "lin":
        A_imag = math.pi * n
    elif init == "inv":
        A_imag = N / math.pi * (N / (2 * n + 1) - 1)
    else:
        A_imag = _legs_frequencies(N)
    return -0.5 + 1j * np.asarray(A_imag, dtype=np.float64)


def _legs_frequencies(N):
    # HiPPO-LegS: A_nk = -sqrt(2n+1)sqrt(2k+1) for n > k, -(n+1) on the diagonal.
    # Adding P P^T with P_n = sqrt(n + 1/2) leaves -1/2 I plus a skew-symmetric matrix S,
    # whose eigenvalues i*omega come in conjugate pairs; keep the positive halves.
    q = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * q + 1)
    A = -np.tril(np.outer(r, r), -1) - np.diag(q + 1)
    P = np.sqrt(q + 0.5)
    S = A + np.outer(P, P) + 0.5 * np.eye(N)
    omega = np.linalg.eigvalsh(-1j * S)  # S is skew-symmetric, so -iS is Hermitian
    return np.sort(omega[omega > 0])[: N // 2]


def _initial_parameters(H, N, channels, init, dt_min, dt_max):
    """Random dt (log-uniform in [dt_min, dt_max]), A from ``init``, C standard normal."""
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
    log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    A = torch.from_numpy(init_A(N, init)).to(torch.cfloat).repeat(H, 1)  # (H N/2)
    C = torch.randn(channels, H, N // 2, dtype=torch.cfloat)  # (c H N/2)
    return {"C": torch.view_as_real(C), "log_dt": log_dt,
            "log_A_real": torch.log(-A.real), "A_imag": A.imag}


def _check_parameter_shapes(parameters, H, N, channels):
    expected = {"C": (channels, H, N // 2, 2), "log_dt": (H,), "log_A_real": (H, N // 2),
                "A_imag": (H, N // 2)}
    if set(parameters) != set(expected):
        raise ValueError(f"parameters must hold exactly {sorted(expected)}, got "
                         f"{sorted(parameters)}")
    for name, shape in expected.items():
        if tuple(parameters[name].shape) != shape:
            raise ValueError(f"parameters[{name!r}] must have shape {shape}, got "
                             f"{tuple(parameters[name].shape)}")


class S4DKernel(nn.Module):
    """Parameters of H diagonal SSMs and the convolution kernel they generate.

    Parameters
    ----------
    d_model : int
        Number of independent channels H.
    d_state : int, default=64
        State size N; the kernel uses N/2 complex conjugate pairs.
    channels : int, default=1
        Number of output kernels per channel (2 for a bidirectional layer).
    init : {"lin", "inv", "legs"}, default="legs"
        Initialisation of the diagonal of A.
    dt_min, dt_max : float, default=0.001, 0.1
        Range of the log-uniform initialisation of the step size dt.
    lr : float or None, default=0.001
        Learning rate of ``log_dt``, ``log_A_real`` and ``A_imag`` (see
        :meth:`parameter_settings`); they are never weight-decayed.
    mode : {"fast", "plain"}, default="fast"
        How :meth:`forward` computes the kernel. ``"fast"``: real arithmetic in chunks
        of time steps with a backward pass that recomputes the powers of ``dA``
        (:func:`vandermonde`), and, without autograd, a cache of the last kernel.
        ``"plain"``: :meth:`vandermonde_kernel`, the reference.
    parameters : dict of str to Tensor or None, default=None
        ``log_dt`` (H), ``log_A_real`` and ``A_imag`` (H N/2) and ``C`` (c H N/2 2) to
        hold instead of a random initialisation (``init``, ``dt_min`` and ``dt_max``
        then do not apply); a Parameter is held as it is, shared, not copied.
    """

    PARAMETER_NAMES = ("C", "log_dt", "log_A_real", "A_imag")

    def __init__(self, d_model, d_state=64, channels=1, init="legs", dt_min=0.001,
                 dt_max=0.1, lr=0.001, mode="fast", parameters=None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even number >= 2, got {d_state}")
        if parameters is None:
            parameters = _initial_parameters(d_model, d_state, channels, init, dt_min,
                                             dt_max)
        _check_parameter_shapes(parameters, d_model, d_state, channels)
        for name in self.PARAMETER_NAMES:
            tensor = parameters[name]
            setattr(self, name, tensor if isinstance(tensor, nn.Parameter)
                    else nn.Parameter(tensor))
        self.ssm_settings = {"weight_decay": 0.0, **({} if lr is None else {"lr": lr})}
        self.mode = mode
        self._cache = None  # (key, kernel); never part of the state_dict or a pickle

    @property
    def is_cached(self):
        """Whether a kernel computed without autograd is kept for the next call."""
        return self._cache is not None

    def parameter_settings(self):
        """Optimizer settings of dt and A, ``{name: settings}``, for
        :func:`s4learn.nn.param_groups`: ``ssm_settings`` (no weight decay, ``lr``)."""
        return {name: self.ssm_settings for name in ("log_dt", "log_A_real", "A_imag")}

    def discretize(self):
        """ZOH discretisation: ``(dtA, dB, C)`` of shapes (H N/2), (H N/2), (c H N/2).

        The discrete state matrix is ``dA = exp(dtA)``; ``dB = (dA - 1) / A`` (B = 1,
        absorbed into C).
        """
        log_dt, log_A_real, A_imag, C = self.ssm_parameters()
        dt = torch.exp(log_dt)  # (H)
        A = -torch.exp(log_A_real) + 1j * A_imag  # (H N/2)
        dtA = A * dt.unsqueeze(-1)
        return dtA, (torch.exp(dtA) - 1.0) / A, torch.view_as_complex(C)

    def ssm_parameters(self):
        """``(log_dt, log_A_real, A_imag, C)`` as the kernel uses them; C as (c H N/2 2).

        Adapters (:mod:`s4learn.peft`) override this to add their updates.
        """
        return self.log_dt, self.log_A_real, self.A_imag, self.C

    def forward(self, L):
        """Kernel of length ``L``, shape (c, H, L), computed as :attr:`mode` says.

        In ``"fast"`` mode with autograd disabled, the kernel is cached and reused for
        the same ``L`` until a parameter changes (in place, replaced, moved or cast).
        """
        if self.mode == "plain":
            return self.vandermonde_kernel(L)
        if torch.is_grad_enabled():
            return self.fast_kernel(L)
        key = cache_key(self, L)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.fast_kernel(L))
        return self._cache[1]

    def fast_kernel(self, L):
        """Same kernel as :meth:`vandermonde_kernel` through :func:`vandermonde`."""
        dtA, dB, C = self.discretize()
        W = C * dB  # (c H N/2)
        return vandermonde(dtA.real, dtA.imag, W.real, W.imag, L)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def vandermonde_kernel(self, L):
        """Plain kernel K_l = 2 Re(sum_n C_n dB_n dA_n^l), materialising (c, H, N/2, L)."""
        dtA, dB, C = self.discretize()
        l = torch.arange(L, device=dtA.device)
        dA_pow = torch.exp(dtA.unsqueeze(-1) * l)  # (H N/2 L)
        return 2 * torch.einsum("chn,hnl->chl", C * dB, dA_pow).real


def cache_key(module, L):
    """Key of a value computed from ``module``'s tensors for length ``L``.

    It changes when any parameter or buffer is modified in place (optimizer step,
    ``load_state_dict``), replaced, moved or cast. Parametrized attributes
    (``torch.nn.utils.parametrize``) are computed from tensors that are all listed.
    """
    tensors = list(module.parameters()) + list(module.buffers())
    return (L,) + tuple((t._version, t.data_ptr(), t.device, t.dtype) for t in tensors)


def vandermonde(dtA_real, dtA_imag, W_real, W_imag, L, chunk=None):
    """Kernel ``K_l = 2 Re(sum_n W_n exp(dtA_n l))`` in real arithmetic, shape (c, H, L).

    Each step is written ``l = k * chunk + j`` (``0 <= j < chunk``), so that
    ``exp(dtA l) = exp(dtA k chunk) exp(dtA j)``: with the block starts folded into
    ``W``, the kernel is one batched matrix product of ``W exp(dtA k chunk)`` (one row
    per block) with the powers ``exp(dtA j)`` of one block. Only the
    ``L / chunk + chunk`` powers are exponentials (``2 sqrt(L)`` with the default
    ``chunk``, instead of ``L``), and no (H, N/2, L) tensor is ever held; the backward
    pass is two more such products.

    Parameters
    ----------
    dtA_real, dtA_imag : Tensor of shape (H, N/2)
        Real and imaginary parts of ``dt * A``.
    W_real, W_imag : Tensor of shape (c, H, N/2)
        Real and imaginary parts of ``W = C * dB``.
    L : int
        Kernel length.
    chunk : int, optional
        Time steps per block; by default ``ceil(sqrt(L))``.

    Returns
    -------
    Tensor of shape (c, H, L)
    """
    if chunk is None:
        chunk = math.isqrt(L - 1) + 1  # ceil(sqrt(L)) for L >= 1
    return _Vandermonde.apply(dtA_real, dtA_imag, W_real, W_imag, L, chunk)


def _powers(dtA_real, dtA_imag, l):
    """``[Re; Im]`` of ``exp(dtA l)`` for the time steps ``l``: shape (H N L')."""
    dtA_l_real = dtA_real.unsqueeze(-1) * l  # (H N/2 L')
    dtA_l_imag = dtA_imag.unsqueeze(-1) * l
    magnitude = torch.exp(dtA_l_real)
    return torch.cat([magnitude * torch.cos(dtA_l_imag),
                      magnitude * torch.sin(dtA_l_imag)], dim=1)


def _complex_product(x_real, x_imag, y_real, y_imag):
    return x_real * y_real - x_imag * y_imag, x_real * y_imag + x_imag * y_real


class _Vandermonde(torch.autograd.Function):
    """Autograd for :func:`vandermonde`; see there for the shapes and the blocks."""

    @staticmethod
    def forward(ctx, dtA_real, dtA_imag, W_real, W_imag, L, chunk):
        blocks = -(-L // chunk)
        steps = torch.arange(chunk, device=dtA_real.device, dtype=dtA_real.dtype)
        within = _powers(dtA_real, dtA_imag, steps)  # (H N chunk): exp(dtA j)
        # the block starts, and the sums over blocks below, in float64 (where the
        # device has it): these tensors are small, and it keeps the error of
        # exp(dtA l) at that of one product
        wide = dtA_real.dtype if dtA_real.device.type == "mps" else torch.float64
        starts = _powers(dtA_real.to(wide), dtA_imag.to(wide),
                         torch.arange(blocks, device=dtA_real.device) * chunk)
        n = dtA_real.shape[-1]
        S_real = starts[:, :n].transpose(1, 2).unsqueeze(1)  # (H 1 blocks N/2)
        S_imag = starts[:, n:].transpose(1, 2).unsqueeze(1)
        V_real, V_imag = _complex_product(  # (H c blocks N/2): W exp(dtA k chunk)
            W_real.transpose(0, 1).unsqueeze(2), W_imag.transpose(0, 1).unsqueeze(2),
            S_real, S_imag)
        rows = 2 * torch.cat([V_real, -V_imag], dim=-1).flatten(1, 2).to(W_real.dtype)
        K = torch.bmm(rows, within).reshape(rows.shape[0], W_real.shape[0], -1)
        ctx.L, ctx.chunk = L, chunk
        ctx.save_for_backward(within, S_real, S_imag, W_real, W_imag)
        return K[..., :L].transpose(0, 1).contiguous()  # (c H L)

    @staticmethod
    def backward(ctx, grad_K):
        within, S_real, S_imag, W_real, W_imag = ctx.saved_tensors
        L, chunk = ctx.L, ctx.chunk
        c, n = W_real.shape[0], W_real.shape[-1]
        H, blocks = S_real.shape[0], S_real.shape[2]
        G = 2 * grad_K.transpose(0, 1)  # (H c L)
        G = torch.nn.functional.pad(G, (0, blocks * chunk - L)).reshape(H, c, blocks, chunk)
        l = torch.arange(blocks * chunk, device=G.device, dtype=G.dtype)
        rows = torch.cat([G, G * l.reshape(blocks, chunk)], dim=1)  # (H 2c blocks chunk)
        # sum_j G[k, j] exp(dtA j), and the same with l G, per block k
        T = torch.bmm(rows.flatten(1, 2), within.transpose(1, 2))  # (H 2c*blocks N)
        T = T.reshape(H, 2 * c, blocks, 2 * n).to(S_real.dtype)
        U_real, U_imag = _complex_product(T[..., :n], T[..., n:], S_real, S_imag)
        # (2c H N/2): sum_l G exp(dtA l), then the same with l G
        U_real = U_real.sum(2).transpose(0, 1).to(W_real.dtype)
        U_imag = U_imag.sum(2).transpose(0, 1).to(W_real.dtype)
        S_l_real, S_l_imag = U_real[c:], U_imag[c:]  # sum_l l G exp(dtA l)
        grad_dtA_real = (W_real * S_l_real - W_imag * S_l_imag).sum(0)
        grad_dtA_imag = -(W_real * S_l_imag + W_imag * S_l_real).sum(0)
        return grad_dtA_real, grad_dtA_imag, U_real[:c], -U_imag[:c], None, None
