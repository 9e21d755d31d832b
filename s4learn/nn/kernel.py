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
        Learning rate attached to ``log_dt``, ``log_A_real`` and ``A_imag`` (read by
        :func:`s4learn.nn.param_groups`); they are never weight-decayed.
    """

    def __init__(self, d_model, d_state=64, channels=1, init="legs", dt_min=0.001,
                 dt_max=0.1, lr=0.001):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even number >= 2, got {d_state}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        H, N = d_model, d_state
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        A = torch.from_numpy(init_A(N, init)).to(torch.cfloat).repeat(H, 1)  # (H N/2)
        C = torch.randn(channels, H, N // 2, dtype=torch.cfloat)  # (c H N/2)

        self.C = nn.Parameter(torch.view_as_real(C))
        self.log_dt = _ssm_parameter(log_dt, lr)
        self.log_A_real = _ssm_parameter(torch.log(-A.real), lr)
        self.A_imag = _ssm_parameter(A.imag, lr)

    def discretize(self):
        """ZOH discretisation: ``(dtA, dB, C)`` of shapes (H N/2), (H N/2), (c H N/2).

        The discrete state matrix is ``dA = exp(dtA)``; ``dB = (dA - 1) / A`` (B = 1,
        absorbed into C).
        """
        dt = torch.exp(self.log_dt)  # (H)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H N/2)
        dtA = A * dt.unsqueeze(-1)
        return dtA, (torch.exp(dtA) - 1.0) / A, torch.view_as_complex(self.C)

    def forward(self, L):
        """Kernel of length ``L``, shape (c, H, L)."""
        return self.vandermonde_kernel(L)

    def vandermonde_kernel(self, L):
        """Plain kernel K_l = 2 Re(sum_n C_n dB_n dA_n^l), materialising (c, H, N/2, L)."""
        dtA, dB, C = self.discretize()
        l = torch.arange(L, device=dtA.device)
        dA_pow = torch.exp(dtA.unsqueeze(-1) * l)  # (H N/2 L)
        return 2 * torch.einsum("chn,hnl->chl", C * dB, dA_pow).real


def _ssm_parameter(tensor, lr):
    parameter = nn.Parameter(tensor)
    parameter._optim = {"weight_decay": 0.0}
    if lr is not None:
        parameter._optim["lr"] = lr
    return parameter
