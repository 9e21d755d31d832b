"""S4Model: encoder, residual S4D blocks, pooling over time, decoder."""

import math
from contextlib import contextmanager

import torch
from torch import nn

from .dropout import SequenceDropout
from .ensemble import MEMBER_MEANS, member_mean, mixing_linear
from .layer import S4D
from .norm import SequenceBatchNorm, make_norm, normalize

POOLINGS = ("mean", "last", "stats")
# pool="stats": per channel of every tap, its mean, max, share of positive steps and
# standard deviation over the real steps
STATISTICS = ("mean", "max", "positive", "std")
STD_EPS = 1e-5  # std = sqrt(variance + STD_EPS): a gradient where a channel is constant
# The log view of the differences is asinh(g z) / asinh(g) of the standardised step z:
# linear below 1/g of a typical step, the sign and log magnitude above it.
LOG_DIFFERENCE_GAIN = 100.0


class S4Model(nn.Module):
    """Deep S4D network mapping (batch, length, d_input) to (batch, d_output).

    A linear encoder lifts the input channels (with ``differences=True``, also their
    steps from one time step to the next, and with ``log_differences=True`` the log
    magnitude of those steps) to ``d_model``; ``n_layers`` residual
    blocks each apply a normalisation (before the layer with ``prenorm=True``, after
    the residual sum otherwise), an :class:`S4D` layer and dropout; the sequence is
    pooled over time and a linear decoder gives the outputs. The defaults are those of
    the estimators for a series.

    Parameters
    ----------
    d_input : int
        Number of input channels.
    d_output : int
        Number of outputs (classes for a classifier).
    d_model : int, default=48
        Width of the S4D layers.
    n_layers : int, default=2
        Number of residual S4D blocks.
    d_state : int, default=64
        State size of each S4D layer.
    dropout : float, default=0.3
        Dropout in each block.
    tie_dropout : bool, default=False
        One dropout mask per sequence and channel, shared by all time steps, instead
        of one per element (see :class:`~s4learn.nn.dropout.SequenceDropout`).
    prenorm : bool, default=True
        Normalise before each layer instead of after the residual sum.
    norm : {"batch", "layer"}, default="batch"
        LayerNorm over the channels of each step, or batch normalisation of each
        channel over the batch and the real steps
        (:class:`~s4learn.nn.norm.SequenceBatchNorm`), as convolutional time-series
        networks use.
    bidirectional : bool, default=False
        Use non-causal (bidirectional) S4D layers.
    init : {"lin", "inv", "legs"}, default="legs"
        Initialisation of the state matrices.
    differences : bool, default=True
        Also feed the encoder each channel's difference ``x[t] - x[t-1]`` (0 at the
        first step), standardised by batch statistics (running statistics at
        prediction): the first-difference representation of time-series
        classifiers, which exposes slopes and edges.
    log_differences : bool, default=True
        Also feed ``asinh(100 z) / asinh(100)`` of each standardised difference ``z``:
        linear below a hundredth of a typical step, the sign and order of magnitude
        above, so that steps far smaller than the typical one (a signal at rest) reach
        the encoder. Needs ``differences=True``.
    pool : {"mean", "last", "stats"}, default="mean"
        Pooling over time: the mean of all steps, the last step (of the real steps
        when ``lengths`` is given), or summary statistics of several taps. ``"stats"``
        reads each S4D layer's output and the last block's features (the taps), and
        pools every channel of every tap to its mean, maximum, share of positive steps
        and standard deviation: ``4 * (n_layers + 1) * d_model`` features per member,
        which the decoder reads. The mean and maximum of a convolution's output and
        the share of its positive values are the features of the Rocket classifiers;
        the earlier taps keep the short patterns that later layers smooth out.
    n_members : int, default=1
        Members of an ensemble trained as one network: ``n_members`` networks of width
        ``d_model`` side by side (see :mod:`s4learn.nn.ensemble`), which share nothing
        but the input. In training mode the output is each member's,
        ``(batch, n_members, d_output)``, for each to train on its own loss; in eval
        mode it is the members' mean (see ``member_mean``).
    member_mean : {"outputs", "probabilities"}, default="outputs"
        How members combine in eval mode: the mean of their outputs, or, for
        classification logits, the log of their mean softmax probability. Inside
        :func:`members_apart` the members' outputs come out as in training.
    **layer_kwargs
        Passed on to :class:`S4D` (``dt_min``, ``dt_max``, ``ssm_lr``).

    Attributes
    ----------
    config : dict
        The constructor arguments, so that the same architecture can be built again
        (``S4Model(**model.config)``) and loaded with this model's ``state_dict``.

    Examples
    --------
    >>> import torch
    >>> from s4learn.nn import S4Model
    >>> model = S4Model(d_input=3, d_output=5, d_model=16, n_layers=2, d_state=8)
    >>> model(torch.randn(4, 20, 3)).shape
    torch.Size([4, 5])

    Sequences of unequal length, padded at the end to a common length:

    >>> model = model.eval()
    >>> x = torch.randn(2, 20, 3)
    >>> lengths = torch.tensor([20, 7])
    >>> torch.allclose(model(x, lengths)[1], model(x[1:, :7])[0], atol=1e-5)
    True
    """

    def __init__(self, d_input, d_output, d_model=48, n_layers=2, d_state=64, dropout=0.3,
                 prenorm=True, bidirectional=False, init="legs", pool="mean",
                 tie_dropout=False, norm="batch", differences=True, log_differences=True,
                 n_members=1, member_mean="outputs", **layer_kwargs):
        super().__init__()
        self.config = dict(d_input=d_input, d_output=d_output, d_model=d_model,
                           n_layers=n_layers, d_state=d_state, dropout=dropout,
                           prenorm=prenorm, bidirectional=bidirectional, init=init,
                           pool=pool, tie_dropout=tie_dropout, norm=norm,
                           differences=differences, log_differences=log_differences,
                           **layer_kwargs)
        if n_members != 1:  # configs of single networks stay as they were
            self.config.update(n_members=n_members, member_mean=member_mean)
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
        if log_differences and not differences:
            raise ValueError("log_differences=True needs differences=True")
        check_members(n_members, member_mean, norm)
        self.n_members = n_members
        self.member_mean = member_mean
        self.width = width = n_members * d_model  # channels of every block
        self.prenorm = prenorm
        self.pool = pool
        self.d_input = d_input
        self.differences = differences
        self.log_differences = log_differences
        if differences:
            self.difference_norm = SequenceBatchNorm(d_input, affine=False)
        n_views = 1 + differences + log_differences
        self.encoder = nn.Linear(n_views * d_input, width)  # each member's rows its own
        self.layers = nn.ModuleList(
            S4D(width, d_state, dropout=dropout, bidirectional=bidirectional, init=init,
                tie_dropout=tie_dropout, n_groups=n_members, **layer_kwargs)
            for _ in range(n_layers))
        self.norms = nn.ModuleList(make_norm(norm, width) for _ in range(n_layers))
        self.dropouts = nn.ModuleList(SequenceDropout(dropout, tie=tie_dropout)
                                      for _ in range(n_layers))
        self.decoder = self.new_decoder(d_output)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "d_input" not in state:  # pickled before differences existed
            self.d_input = self.encoder.in_features
            self.differences = False
        if "log_differences" not in state:  # pickled before log_differences existed
            self.log_differences = False
        if "n_members" not in state:  # pickled before ensembles existed
            self.n_members, self.member_mean = 1, "outputs"
            self.width = self.layers[0].d_model if len(self.layers) else \
                self.decoder.in_features

    @property
    def d_model(self):
        """Width of one member's S4D layers."""
        return self.width // self.n_members

    @property
    def n_pooled(self):
        """Number of pooled features of one member: what its decoder reads."""
        if self.pool != "stats":
            return self.d_model
        return len(STATISTICS) * (len(self.layers) + 1) * self.d_model

    @property
    def d_output(self):
        """Number of outputs (of each member)."""
        return self.decoder.out_features // self.n_members

    def new_decoder(self, d_output):
        """A freshly initialised output layer for ``d_output`` outputs per member."""
        device = self.encoder.weight.device
        return mixing_linear(self.n_members, self.n_pooled, d_output).to(device)

    def forward(self, x, lengths=None):
        """Map ``x`` of shape (batch, length, d_input) to (batch, d_output).

        Parameters
        ----------
        x : Tensor of shape (batch, length, d_input)
            Input sequences, padded at the end when ``lengths`` is given.
        lengths : int64 Tensor of shape (batch,), optional
            Number of real steps of each sequence, between 1 and ``length``. Steps at
            and after ``lengths[b]`` are padding: they have no influence on the outputs
            (or on any gradient), which equal those of each sequence run alone. None:
            every step is real.

        Returns
        -------
        Tensor of shape (batch, d_output)
        """
        taps = self._taps(x, padding_mask(lengths, x))
        pooled = self.pool_time(taps if self.pool == "stats" else taps[-1], lengths)
        if getattr(self, "_pooled_out", False):
            return pooled
        return self.head(pooled)

    def head(self, pooled):
        """The outputs from the pooled features (batch, n_members * n_pooled): the
        decoder's, and for an ensemble its members' (training mode) or their mean."""
        outputs = self.decoder(pooled)
        if self.n_members == 1:
            return outputs
        members = outputs.unflatten(-1, (self.n_members, -1))  # (B K d_output)
        if self.training or getattr(self, "_members_apart", False):
            return members
        return member_mean(members, self.member_mean)

    def features(self, x, lengths=None):
        """Per-step features after the last block, shape (batch, length, d_model).

        With ``lengths`` (see :meth:`forward`), the input of every S4D layer is zero at
        the padded steps, and so are the returned features.
        """
        return self._taps(x, padding_mask(lengths, x))[-1]

    def _taps(self, x, mask):
        """The last block's features (B, L, width), zero at the padded steps; for
        ``pool="stats"`` preceded by each block's S4D output (after dropout), also zero
        at the padded steps."""
        taps = []
        x = self.encode(x, mask)
        for layer, norm, dropout in zip(self.layers, self.norms, self.dropouts):
            z = normalize(norm, x, mask) if self.prenorm else x
            y = dropout(layer(zero_padding(z, mask)))
            if self.pool == "stats":
                taps.append(zero_padding(y, mask))
            x = x + y
            if not self.prenorm:
                x = normalize(norm, x, mask)
        return taps + [zero_padding(x, mask)]

    def encode(self, x, mask=None):
        """The encoder's output (B, L, H) for ``x`` (B, L, d_input): the channels, with
        their difference views when ``differences``; ``mask`` (B, L) marks real steps."""
        if self.differences:
            steps = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
            x = torch.cat([x, *self._difference_views(
                normalize(self.difference_norm, steps, mask))], dim=-1)
        return self.encoder(x)

    def _difference_views(self, steps):
        """The standardised steps, and with ``log_differences`` their log magnitude."""
        if not self.log_differences:
            return [steps]
        gain = LOG_DIFFERENCE_GAIN
        return [steps, torch.asinh(gain * steps) / math.asinh(gain)]

    def encode_step(self, x_t, x_previous=None):
        """The encoder's output at one step, (batch, d_input) -> (batch, d_model).

        ``x_previous`` is the step before ``x_t`` (None at the first step); the
        recurrent twin of the encoding in :meth:`forward`, for streaming.
        """
        if self.differences:
            steps = torch.zeros_like(x_t) if x_previous is None else x_t - x_previous
            x_t = torch.cat([x_t, *self._difference_views(self.difference_norm(steps))],
                            dim=-1)
        return self.encoder(x_t)

    def pool_time(self, x, lengths=None):
        """Pool features ``x`` (batch, length, d_model) over time to (batch, d_model).

        With ``lengths``, the steps at and after ``lengths[b]`` of ``x`` must be zero
        (as :meth:`features` returns them): the mean is over the real steps only and
        ``"last"`` takes step ``lengths[b] - 1``. For ``pool="stats"``, ``x`` is the list
        of taps and the result (batch, n_members * n_pooled), see :func:`tap_statistics`.
        """
        if self.pool == "stats":
            return self.member_major(tap_statistics(x, lengths))
        if lengths is None:
            return x.mean(dim=1) if self.pool == "mean" else x[:, -1]
        lengths = lengths.to(x.device)
        if self.pool == "mean":
            return x.sum(dim=1) / lengths.unsqueeze(-1).to(x.dtype)
        return x[torch.arange(x.shape[0], device=x.device), lengths - 1]

    def member_major(self, statistics):
        """(batch, n_members * n_pooled) from per-statistic blocks (batch, S, width):
        each member's features side by side, as the grouped decoder reads them."""
        blocks = statistics.unflatten(-1, (self.n_members, self.d_model))  # (B S K d)
        return blocks.transpose(1, 2).flatten(1)


def tap_statistics(taps, lengths=None):
    """Mean, max, share of positive steps and std of every channel of every tap.

    Parameters
    ----------
    taps : list of Tensor of shape (batch, length, width)
        Zero at the padded steps when ``lengths`` is given.
    lengths : int64 Tensor of shape (batch,), optional
        Real steps of each sequence (see :meth:`S4Model.forward`).

    Returns
    -------
    Tensor of shape (batch, 4 * len(taps), width)
        Tap by tap, the four statistics of :data:`STATISTICS`.
    """
    x = torch.stack(taps, dim=1)  # (B T L W)
    if lengths is None:
        count = torch.full((x.shape[0], 1, 1), x.shape[2], dtype=x.dtype, device=x.device)
        real = None
    else:
        count = lengths.to(x.device, x.dtype)[:, None, None]
        real = padding_mask(lengths, taps[0]).unsqueeze(1)  # (B 1 L 1)
    mean = x.sum(dim=2) / count
    maximum = (x if real is None else x.masked_fill(~real, -torch.inf)).amax(dim=2)
    positive = (x > 0).to(x.dtype).sum(dim=2) / count  # padding is zero: never counted
    centred = x - mean.unsqueeze(2)
    if real is not None:
        centred = centred.masked_fill(~real, 0.0)
    std = torch.sqrt(centred.square().sum(dim=2) / count + STD_EPS)
    statistics = torch.stack([mean, maximum, positive, std], dim=2)  # (B T 4 W)
    return statistics.flatten(1, 2)


@contextmanager
def _switched_on(network, flag):
    """Within the block, ``network``'s attribute ``flag`` is True."""
    setattr(network, flag, True)
    try:
        yield network
    finally:
        setattr(network, flag, False)


def members_apart(network):
    """Within the block, ``network`` (an ensemble) outputs each member's outputs,
    (batch, n_members, d_output), in eval mode as well."""
    return _switched_on(network, "_members_apart")


def pooled_out(network):
    """Within the block, ``network`` outputs its pooled features, (batch, n_members *
    n_pooled): what its output layer (``decoder``) reads."""
    return _switched_on(network, "_pooled_out")


def check_members(n_members, member_mean, norm):
    """ValueError for an ensemble setting that :class:`S4Model` cannot build."""
    if not (isinstance(n_members, int) and n_members >= 1):
        raise ValueError(f"n_members must be an int >= 1, got {n_members!r}")
    if member_mean not in MEMBER_MEANS:
        raise ValueError(f"member_mean must be one of {MEMBER_MEANS}, got {member_mean!r}")
    if n_members > 1 and norm != "batch":
        raise ValueError("n_members > 1 needs norm='batch': a layer norm over the "
                         "channels would mix the members")


def least_parameter_count(d_input, d_output, d_model, n_layers, d_state):
    """A lower bound of the number of parameters of an :class:`S4Model` of these sizes.

    Each layer holds A and C (at least ``d_model * d_state`` values) and its output
    mixing (``2 * d_model**2``); the encoder and decoder ``d_model * (d_input +
    d_output)``. Computed from the sizes alone, so it can refuse a network before any
    of it is built.
    """
    per_layer = d_model * d_state + 2 * d_model**2
    return n_layers * per_layer + d_model * (d_input + d_output)


def padding_mask(lengths, x):
    """Boolean mask (batch, length, 1) of the real steps of ``x``, or None without lengths.

    Parameters
    ----------
    lengths : int Tensor of shape (batch,) or None
        Real steps per sequence, each between 1 and ``x.shape[1]``.
    x : Tensor of shape (batch, length, ...)
        The padded batch.
    """
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor) or lengths.dtype.is_floating_point \
            or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got {lengths!r}")
    batch, length = x.shape[:2]
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), one length per sequence; "
                         f"got {tuple(lengths.shape)}")
    lengths = lengths.to(x.device)
    if ((lengths < 1) | (lengths > length)).any():
        raise ValueError(f"lengths must lie between 1 and the padded length {length}, "
                         f"got values from {lengths.min().item()} to {lengths.max().item()}")
    steps = torch.arange(length, device=x.device)
    return (steps < lengths.unsqueeze(-1)).unsqueeze(-1)


def zero_padding(x, mask):
    """``x`` with the steps outside ``mask`` (from :func:`padding_mask`) set to zero."""
    return x if mask is None else x.masked_fill(~mask, 0.0)
