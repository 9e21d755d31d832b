"""Adapter modules (pure PyTorch): LoRA on linear layers, updates of an S4D kernel.

Every adapter keeps the pretrained tensors frozen and adds a trainable update that is
zero at the start, so an adapted network computes the pretrained function until it is
trained. :func:`merge_adapters` folds the updates back into plain modules.
"""

import math

import torch
from torch import nn

from ..nn import S4DKernel
from ..nn.ensemble import GroupedLinear


class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) * B A dropout(x)`` with ``base`` frozen and ``B = 0``.

    Parameters
    ----------
    base : nn.Linear
        The pretrained layer; its weight and bias are frozen.
    rank : int
        Inner dimension of the update ``B A`` (``A``: rank x in, ``B``: out x rank).
    alpha : float or None, default=None
        Scale of the update is ``alpha / rank``; None means ``alpha = rank``.
    dropout : float, default=0.0
        Dropout on the input of the update.
    """

    def __init__(self, base, rank, alpha=None, dropout=0.0):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scaling = (rank if alpha is None else alpha) / rank
        self.lora_A = nn.Parameter(base.weight.new_empty(rank, base.in_features))
        self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear's weight
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T
        return self.base(x) + self.scaling * update

    def merged(self):
        """A plain ``nn.Linear`` computing the same function (in eval mode)."""
        linear = nn.utils.skip_init(  # no random init: the weights are set below
            nn.Linear, self.base.in_features, self.base.out_features,
            bias=self.base.bias is not None, device=self.base.weight.device,
            dtype=self.base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.scaling * self.lora_B @ self.lora_A)
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        return linear


class GroupedLoRALinear(LoRALinear):
    """:class:`LoRALinear` of a :class:`~s4learn.nn.ensemble.GroupedLinear`: each group
    (ensemble member) gets its own ``B A`` of ``rank``, so the update, like the base,
    maps each group to itself and merges into a ``GroupedLinear``."""

    def __init__(self, base, rank, alpha=None, dropout=0.0):
        nn.Module.__init__(self)
        self.base = base.requires_grad_(False)
        self.scaling = (rank if alpha is None else alpha) / rank
        groups, out_features, in_features = base.weight.shape
        self.lora_A = nn.Parameter(base.weight.new_empty(groups, rank, in_features))
        self.lora_B = nn.Parameter(base.weight.new_zeros(groups, out_features, rank))
        for group in self.lora_A.data:
            nn.init.kaiming_uniform_(group, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x_groups = self.dropout(x).unflatten(-1, (self.base.n_groups, -1))  # (... G in)
        update = torch.einsum("...gi,gri,gor->...go", x_groups, self.lora_A, self.lora_B)
        return self.base(x) + self.scaling * update.flatten(-2)

    def merged(self):
        """A plain ``GroupedLinear`` computing the same function (in eval mode)."""
        groups, out_features, in_features = self.base.weight.shape
        linear = GroupedLinear(groups, in_features, out_features).to(self.base.weight)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.scaling * self.lora_B @ self.lora_A)
            linear.bias.copy_(self.base.bias)
        return linear


def lora_linear(base, rank, alpha=None, dropout=0.0):
    """The LoRA adapter of ``base``: grouped for a ``GroupedLinear``, else plain."""
    kind = GroupedLoRALinear if isinstance(base, GroupedLinear) else LoRALinear
    return kind(base, rank, alpha, dropout)


class SparseUpdate(nn.Module):
    """Zero-initialised update of the entries ``index`` of a tensor of ``shape``.

    Only ``len(index)`` values are parameters; every other entry of the update is 0.
    """

    def __init__(self, shape, index, like):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("index", index.to(like.device))
        self.values = nn.Parameter(like.new_zeros(len(index)))

    def forward(self):
        update = self.values.new_zeros(math.prod(self.shape))
        return update.index_put((self.index,), self.values).view(self.shape)


class LowRankUpdate(nn.Module):
    """Zero-initialised update ``B A`` of a tensor viewed as a (rows, cols) matrix."""

    def __init__(self, shape, rows, rank, like):
        super().__init__()
        self.shape = tuple(shape)
        cols = math.prod(self.shape) // rows
        self.lora_A = nn.Parameter(like.new_empty(rank, cols))
        self.lora_B = nn.Parameter(like.new_zeros(rows, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self):
        return (self.lora_B @ self.lora_A).view(self.shape)


class AdaptedS4DKernel(S4DKernel):
    """An :class:`~s4learn.nn.S4DKernel` whose frozen SSM parameters get updates.

    Parameters
    ----------
    base : S4DKernel
        The pretrained kernel; its parameters are shared and frozen.
    updates : dict of str to nn.Module
        Update modules (called without arguments) for any of ``"log_dt"``,
        ``"log_A_real"``, ``"A_imag"`` and ``"C"``; each returns a tensor of the
        parameter's shape, added to it.
    trainable : iterable of str, default=()
        Names of base parameters trained directly (e.g. ``"log_dt"``).
    C_mask : Tensor of shape (H, N/2) or None, default=None
        0/1 mask multiplying C (after its update): states with 0 are pruned.
    """

    SSM_NAMES = ("log_dt", "log_A_real", "A_imag", "C")

    def __init__(self, base, updates, trainable=(), C_mask=None):
        channels, H, half_N, _ = base.C.shape
        super().__init__(H, 2 * half_N, channels=channels, mode=base.mode,
                         parameters={name: getattr(base, name) for name in self.SSM_NAMES})
        for name in self.SSM_NAMES:
            getattr(self, name).requires_grad_(name in trainable)
        self.ssm_settings = dict(base.ssm_settings)
        self.updates = nn.ModuleDict(updates)
        self.register_buffer("C_mask", None if C_mask is None
                             else C_mask.to(base.C.device, base.C.dtype))

    def parameter_settings(self):
        """The SSM settings for dt and A and for the parameters of their updates."""
        settings = super().parameter_settings()
        for name, update in self.updates.items():
            if name in settings:
                settings.update({f"updates.{name}.{parameter_name}": self.ssm_settings
                                 for parameter_name, _ in update.named_parameters()})
        return settings

    def ssm_parameters(self):
        tensors = {name: getattr(self, name) for name in self.SSM_NAMES}
        for name, update in self.updates.items():
            tensors[name] = tensors[name] + update()
        if self.C_mask is not None:
            tensors["C"] = tensors["C"] * self.C_mask[..., None]
        return tuple(tensors[name] for name in self.SSM_NAMES)

    def merged(self):
        """A plain :class:`~s4learn.nn.S4DKernel` with the updates folded in."""
        channels, H, half_N, _ = self.C.shape
        with torch.no_grad():  # new tensors: nothing shared with this kernel
            tensors = {name: tensor.clone() for name, tensor in
                       zip(self.SSM_NAMES, self.ssm_parameters())}
        return S4DKernel(H, 2 * half_N, channels=channels, lr=self.ssm_settings.get("lr"),
                         mode=self.mode, parameters=tensors)


def count_merged_parameters(module):
    """Parameters that ``module`` has once :func:`merge_adapters` has run, without merging.

    Adapters keep their base tensors as parameters; merging drops only the adapters' own
    factors and updates, so those are left out of the count.
    """
    adapter_only = set()
    for submodule in module.modules():
        if isinstance(submodule, LoRALinear):
            adapter_only.update((id(submodule.lora_A), id(submodule.lora_B)))
        elif isinstance(submodule, AdaptedS4DKernel):
            adapter_only.update(id(parameter) for parameter in submodule.updates.parameters())
    return sum(parameter.numel() for parameter in module.parameters()
               if id(parameter) not in adapter_only)


def merge_adapters(module):
    """Replace every adapter inside ``module`` by the plain module it computes.

    Works in place and returns ``module``; every parameter of the result is trainable.
    """
    for name, child in module.named_children():
        if isinstance(child, (LoRALinear, AdaptedS4DKernel)):
            setattr(module, name, child.merged())
        else:
            merge_adapters(child)
    return module.requires_grad_(True)
