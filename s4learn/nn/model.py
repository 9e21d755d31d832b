"""S4Model: encoder, residual S4D blocks, pooling over time, decoder."""

from torch import nn

from .layer import S4D

POOLINGS = ("mean", "last")


class S4Model(nn.Module):
    """Deep S4D network mapping (batch, length, d_input) to (batch, d_output).

    A linear encoder lifts the input channels to ``d_model``; ``n_layers`` residual
    blocks each apply LayerNorm (before the layer with ``prenorm=True``, after the
    residual sum otherwise), an :class:`S4D` layer and dropout; the sequence is pooled
    over time and a linear decoder gives the outputs.

    Parameters
    ----------
    d_input : int
        Number of input channels.
    d_output : int
        Number of outputs (classes for a classifier).
    d_model : int, default=128
        Width of the S4D layers.
    n_layers : int, default=4
        Number of residual S4D blocks.
    d_state : int, default=64
        State size of each S4D layer.
    dropout : float, default=0.1
        Dropout in each block.
    prenorm : bool, default=False
        Normalise before each layer instead of after the residual sum.
    bidirectional : bool, default=False
        Use non-causal (bidirectional) S4D layers.
    init : {"lin", "inv", "legs"}, default="legs"
        Initialisation of the state matrices.
    pool : {"mean", "last"}, default="mean"
        Pooling over time: the mean of all steps, or the last step.
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
    """

    def __init__(self, d_input, d_output, d_model=128, n_layers=4, d_state=64, dropout=0.1,
                 prenorm=False, bidirectional=False, init="legs", pool="mean", **layer_kwargs):
        super().__init__()
        self.config = dict(d_input=d_input, d_output=d_output, d_model=d_model,
                           n_layers=n_layers, d_state=d_state, dropout=dropout,
                           prenorm=prenorm, bidirectional=bidirectional, init=init,
                           pool=pool, **layer_kwargs)
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
        self.prenorm = prenorm
        self.pool = pool
        self.encoder = nn.Linear(d_input, d_model)
        self.layers = nn.ModuleList(
            S4D(d_model, d_state, dropout=dropout, bidirectional=bidirectional, init=init,
                **layer_kwargs)
            for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.dropouts = nn.ModuleList(nn.Dropout(dropout) for _ in range(n_layers))
        self.decoder = nn.Linear(d_model, d_output)

    def forward(self, x):
        """Map ``x`` of shape (batch, length, d_input) to (batch, d_output)."""
        return self.decoder(self.pool_time(self.features(x)))

    def features(self, x):
        """Per-step features after the last block, shape (batch, length, d_model)."""
        x = self.encoder(x)
        for layer, norm, dropout in zip(self.layers, self.norms, self.dropouts):
            z = norm(x) if self.prenorm else x
            x = x + dropout(layer(z))
            if not self.prenorm:
                x = norm(x)
        return x

    def pool_time(self, x):
        return x.mean(dim=1) if self.pool == "mean" else x[:, -1]
