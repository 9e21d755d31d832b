"""Fine-tuning methods: which parts of a pretrained S4Model train, and how.

A method object holds settings only (scikit-learn style, so ``get_params`` and
``GridSearchCV`` reach them); :meth:`FineTuningMethod.adapt` turns a copy of a
pretrained :class:`~s4learn.nn.S4Model` into the network to train, after the training
run that :meth:`FineTuningMethod.warmup_run` asks for, if any.
"""

import copy
import numbers
from typing import NamedTuple

import torch
from sklearn.base import BaseEstimator

from ..nn.norm import SequenceBatchNorm
from .adapters import AdaptedS4DKernel, LowRankUpdate, SparseUpdate, lora_linear

SSM_METHODS = ("full", "freeze", "lora", "sdlora")
LP_METHODS = ("full", "freeze", "lora")
D_METHODS = ("full", "freeze")


class WarmupRun(NamedTuple):
    """A training run that a method needs on the new data before it adapts a network.

    Attributes
    ----------
    network : S4Model
        A throw-away copy of the network, to train in place.
    epochs : int
        Epochs to train it.
    lr : float
        Learning rate of that training.
    """

    network: torch.nn.Module
    epochs: int
    lr: float


class FineTuningMethod(BaseEstimator):
    """Base class of :class:`LoRA` and :class:`SDLoRA`; see there.

    Fine-tuning a network ``model`` on new data takes two calls, with an optional
    training run between them::

        run = method.warmup_run(model)
        warmed_up = None
        if run is not None:
            ...  # train run.network on the new data, run.epochs epochs at run.lr
            warmed_up = run.network
        model = method.adapt(model, warmed_up)
    """

    def warmup_run(self, model):
        """The warmup that :meth:`adapt` needs, or None (only ``ssm_method="sdlora"``).

        Checks the settings first, so that a bad one raises before any training.

        Parameters
        ----------
        model : S4Model
            The network to adapt, with the task's output head (not modified).

        Returns
        -------
        WarmupRun or None
            Its ``network``: a copy of ``model`` whose SSM parameters and head are
            trainable, to train on the new data for ``epochs`` at ``lr`` and pass to
            :meth:`adapt` as ``warmed_up``.
        """
        self._check_settings()
        if self.ssm_method != "sdlora":
            return None
        self._selection_counts(model)
        warm = copy.deepcopy(model)
        warm.requires_grad_(False)
        for layer in warm.layers:
            layer.kernel.requires_grad_(True)
        warm.decoder.requires_grad_(True)
        return WarmupRun(warm, self.warmup_epochs, self.warmup_lr)

    def adapt(self, model, warmed_up=None):
        """Adapt ``model`` (an :class:`~s4learn.nn.S4Model`, changed in place).

        Parameters
        ----------
        model : S4Model
            A copy of the pretrained network with the task's output head; the head
            (``model.decoder``) stays fully trainable.
        warmed_up : S4Model or None
            The network of :meth:`warmup_run`, trained on the new data; needed by
            ``ssm_method="sdlora"``, which ranks the SSM dimensions by how much the
            warmup changed them.

        Returns
        -------
        model
        """
        self._check_settings()
        selections = None
        if self.ssm_method == "sdlora":
            selections = self._select_dimensions(model, warmed_up)
        model.requires_grad_(False)
        for index, layer in enumerate(model.layers):
            layer.kernel = self._adapt_kernel(
                layer.kernel, None if selections is None else selections[index])
            layer.D.requires_grad_(self.D_method == "full")
            layer.output_linear = self._adapt_linear(layer.output_linear)
        model.encoder = self._adapt_linear(model.encoder)
        model.norms.requires_grad_(self.lp_method == "full")
        for module in model.modules():  # batch statistics stay with the norms' parameters
            if isinstance(module, SequenceBatchNorm):
                module.freeze_statistics = self.lp_method != "full"
        model.decoder.requires_grad_(True)
        return model

    # ----------------------------------------------------------------- pieces
    def _check_settings(self):
        for name, allowed in (("ssm_method", SSM_METHODS), ("lp_method", LP_METHODS),
                              ("D_method", D_METHODS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got "
                                 f"{getattr(self, name)!r}")
        uses_lora = "lora" in (self.ssm_method, self.lp_method)
        if uses_lora and not (isinstance(self.lora_rank, numbers.Integral)
                              and self.lora_rank > 0):
            raise ValueError(f"lora_rank must be a positive int, got {self.lora_rank!r}")

    def _adapt_linear(self, linear):
        if self.lp_method == "lora":
            return lora_linear(linear, self.lora_rank, self.lora_alpha, self.lora_dropout)
        return linear.requires_grad_(self.lp_method == "full")

    def _adapt_kernel(self, kernel, selection):
        if self.ssm_method in ("full", "freeze"):
            return kernel.requires_grad_(self.ssm_method == "full")
        if self.ssm_method == "lora":
            H = kernel.log_dt.shape[0]
            updates = {name: LowRankUpdate(getattr(kernel, name).shape, H, self.lora_rank,
                                           getattr(kernel, name))
                       for name in ("log_A_real", "A_imag")}
            # C (c H N/2 2) as a matrix with one row per (direction, channel)
            updates["C"] = LowRankUpdate(kernel.C.shape, kernel.C.shape[0] * H,
                                         self.lora_rank, kernel.C)
            return AdaptedS4DKernel(kernel, updates, trainable=("log_dt",))
        return _sparse_kernel(kernel, *selection)

    def _selection_counts(self, model):
        half_N = model.layers[0].kernel.log_A_real.shape[1]
        H = model.layers[0].kernel.log_dt.shape[0]
        return _selection_counts(self, H, half_N)

    def _select_dimensions(self, model, warmed_up):
        if warmed_up is None:
            raise ValueError("ssm_method='sdlora' needs a warmup run on the new data: "
                             "see warmup_run")
        counts = self._selection_counts(model)
        return [select_dimensions(before.kernel, after.kernel, *counts)
                for before, after in zip(model.layers, warmed_up.layers)]


class LoRA(FineTuningMethod):
    """Low-rank adaptation (Hu et al., 2021) of a pretrained S4 network.

    By default LoRA adapters go on the linear projections (the encoder and each
    layer's output projection) and everything else but the task head is frozen; the
    ``*_method`` settings choose per part, as in the experiments of Galim et al.
    (2025). ``ssm_method="lora"`` adds low-rank updates to A (its log real part and
    its imaginary part, each an (H, N/2) matrix) and to C (one row per channel) and
    trains every channel's dt.

    Parameters
    ----------
    lora_rank : int, default=4
        Rank of the adapters.
    lora_alpha : float or None, default=None
        Adapter scale ``alpha / rank``; None means 1.
    lora_dropout : float, default=0.0
        Dropout on the adapters' input.
    ssm_method : {"freeze", "full", "lora"}, default="freeze"
        How the SSM parameters (dt, A, C) train.
    lp_method : {"lora", "full", "freeze"}, default="lora"
        How the linear projections train; LayerNorms train only with "full".
    D_method : {"freeze", "full"}, default="freeze"
        Whether the skip parameters D train.

    Examples
    --------
    >>> from s4learn.peft import LoRA
    >>> LoRA(lora_rank=8).get_params()["lora_rank"]
    8
    """

    def __init__(self, lora_rank=4, lora_alpha=None, lora_dropout=0.0, ssm_method="freeze",
                 lp_method="lora", D_method="freeze"):
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.ssm_method = ssm_method
        self.lp_method = lp_method
        self.D_method = D_method

    def _check_settings(self):
        if self.ssm_method == "sdlora":
            raise ValueError("ssm_method='sdlora' needs the SDLoRA method, not LoRA")
        super()._check_settings()


class SDLoRA(FineTuningMethod):
    """Selective dimension tuning of the SSM plus LoRA on the linear projections.

    SDLoRA (Galim, Kang, Zeng, Koo, Lee; "Parameter-Efficient Fine-Tuning of State
    Space Models", ICML 2025):

    1. Warmup: a throw-away copy of the network trains its SSM parameters (and the
       head) on the new data for ``warmup_epochs`` at ``warmup_lr``.
    2. Per layer, the importance of a (channel, state) entry is the squared change of
       its A (log real part and imaginary part) and C during warmup; a channel's
       importance is the sum over its states. The ``select_channels_dim`` most
       important channels are kept and the ``updatable_channels_dim`` most important
       of them train; within each channel the ``select_states_dim`` most important
       states are kept and the ``updatable_states_dim`` most important train. Entries
       not kept are pruned (their C is set to zero).
    3. From the pretrained weights, zero-initialised updates of A and C train on the
       chosen (channel, state) entries only, with dt of every channel, D (unless
       ``D_method="freeze"``), LoRA on the linear projections and the task head.

    A count is an int (that many) or a float in (0, 1] (that share, rounded up);
    None keeps every channel or state.

    Parameters
    ----------
    select_channels_dim : int, float or None, default=None
        Channels kept per layer.
    updatable_channels_dim : int or float, default=0.25
        Channels per layer whose A and C train; at most ``select_channels_dim``.
    select_states_dim : int, float or None, default=None
        States (of N/2) kept per channel.
    updatable_states_dim : int or float, default=0.25
        States per trainable channel whose A and C train; at most
        ``select_states_dim``.
    warmup_epochs : int, default=1
        Epochs of the warmup run.
    warmup_lr : float, default=0.001
        Learning rate of the warmup run.
    lora_rank, lora_alpha, lora_dropout
        LoRA on the linear projections, as in :class:`LoRA`.
    ssm_method : {"sdlora", "full", "freeze", "lora"}, default="sdlora"
        How the SSM trains; other values turn off the dimension selection.
    lp_method : {"lora", "full", "freeze"}, default="lora"
        How the linear projections train.
    D_method : {"full", "freeze"}, default="full"
        Whether the skip parameters D train.

    Examples
    --------
    >>> from s4learn.peft import SDLoRA
    >>> SDLoRA(updatable_channels_dim=8).get_params()["updatable_channels_dim"]
    8
    """

    def __init__(self, select_channels_dim=None, updatable_channels_dim=0.25,
                 select_states_dim=None, updatable_states_dim=0.25, warmup_epochs=1,
                 warmup_lr=0.001, lora_rank=4, lora_alpha=None, lora_dropout=0.0,
                 ssm_method="sdlora", lp_method="lora", D_method="full"):
        self.select_channels_dim = select_channels_dim
        self.updatable_channels_dim = updatable_channels_dim
        self.select_states_dim = select_states_dim
        self.updatable_states_dim = updatable_states_dim
        self.warmup_epochs = warmup_epochs
        self.warmup_lr = warmup_lr
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.ssm_method = ssm_method
        self.lp_method = lp_method
        self.D_method = D_method

    def _check_settings(self):
        super()._check_settings()
        if not (isinstance(self.warmup_epochs, numbers.Integral) and self.warmup_epochs > 0):
            raise ValueError(f"warmup_epochs must be a positive int, got "
                             f"{self.warmup_epochs!r}")
        if not self.warmup_lr > 0:
            raise ValueError(f"warmup_lr must be positive, got {self.warmup_lr!r}")


def _selection_counts(method, H, half_N):
    """(kept channels, trainable channels, kept states, trainable states) as ints."""
    counts = []
    for dim, total in (("channels", H), ("states", half_N)):
        select = _count(method, f"select_{dim}_dim", total, default=total)
        update = _count(method, f"updatable_{dim}_dim", total, default=None)
        if update > select:
            raise ValueError(f"updatable_{dim}_dim ({update}) must not exceed "
                             f"select_{dim}_dim ({select}): only kept {dim} can train")
        counts += [select, update]
    return counts


def _count(method, name, total, default):
    value = getattr(method, name)
    if value is None and default is not None:
        return default
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 0 <= value <= total:
            raise ValueError(f"{name} must be between 0 and {total} (the model has "
                             f"{total}), got {value}")
        return int(value)
    if isinstance(value, numbers.Real) and 0 < value <= 1:
        return int(-(-value * total // 1))  # ceil
    raise ValueError(f"{name} must be an int count or a float share in (0, 1], got "
                     f"{value!r}")


def ssm_importance(before, after):
    """Squared change per (channel, state) of A and C between two kernels: (H, N/2)."""
    change = (after.log_A_real - before.log_A_real) ** 2 + (after.A_imag - before.A_imag) ** 2
    change = change + ((after.C - before.C) ** 2).sum(dim=(0, -1))
    return change.detach()


def select_dimensions(before, after, select_channels, update_channels, select_states,
                      update_states):
    """Which (channel, state) entries of one layer train and which are kept.

    Returns
    -------
    trainable : BoolTensor of shape (H, N/2)
    kept : BoolTensor of shape (H, N/2)
    """
    importance = ssm_importance(before, after)  # (H N/2)
    channel_order = importance.sum(dim=1).argsort(descending=True)
    state_order = importance.argsort(dim=1, descending=True)  # per channel
    rank_of_state = state_order.argsort(dim=1)  # 0 = most important state of its channel
    rank_of_channel = channel_order.argsort()
    kept = (rank_of_channel[:, None] < select_channels) & (rank_of_state < select_states)
    trainable = (rank_of_channel[:, None] < update_channels) & (rank_of_state < update_states)
    return trainable, kept


def _sparse_kernel(kernel, trainable, kept):
    entries = trainable.flatten().nonzero().squeeze(1)  # flat (h, n) positions
    half_N = kernel.log_A_real.shape[1]
    updates = {name: SparseUpdate(getattr(kernel, name).shape, entries, getattr(kernel, name))
               for name in ("log_A_real", "A_imag")}
    # C (c H N/2 2): the same (h, n) entries in every direction, real and imaginary part
    channels = kernel.C.shape[0]
    c = torch.arange(channels, device=entries.device)
    part = torch.arange(2, device=entries.device)
    h, n = entries // half_N, entries % half_N
    H = kernel.log_dt.shape[0]
    C_entries = (((c[:, None] * H + h[None]) * half_N + n[None])[..., None] * 2 + part)
    updates["C"] = SparseUpdate(kernel.C.shape, C_entries.flatten(), kernel.C)
    C_mask = None if bool(kept.all()) else kept
    return AdaptedS4DKernel(kernel, updates, trainable=("log_dt",), C_mask=C_mask)

