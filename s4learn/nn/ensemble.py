"""Ensembles trained as one network: members side by side in the channels.

An S4D layer's channels are independent until its output projection mixes them, so
``n_members`` networks of width ``d_model`` are one network of width
``n_members * d_model`` whose mixing layers are block-diagonal (:class:`GroupedLinear`):
one batch and one optimizer step train every member, each on its own loss.
"""

import math

import torch
from torch import nn

MEMBER_MEANS = ("outputs", "probabilities")


class GroupedLinear(nn.Module):
    """``n_groups`` independent linear maps, one per equal slice of the last dimension.

    Maps ``(..., n_groups * in_features)`` to ``(..., n_groups * out_features)``: slice
    ``g`` of the output is slice ``g`` of the input times its own weight, plus bias.
    Each group is initialised as an :class:`torch.nn.Linear` of its size.

    Parameters
    ----------
    n_groups : int
        Number of groups (ensemble members).
    in_features, out_features : int
        Sizes of one group's input and output.

    Examples
    --------
    >>> import torch
    >>> from s4learn.nn.ensemble import GroupedLinear
    >>> layer = GroupedLinear(3, 4, 2)
    >>> layer(torch.randn(5, 12)).shape
    torch.Size([5, 6])
    """

    def __init__(self, n_groups, in_features, out_features):
        super().__init__()
        self.n_groups = n_groups
        self.in_features = n_groups * in_features
        self.out_features = n_groups * out_features
        self.weight = nn.Parameter(torch.empty(n_groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_groups * out_features))
        for group in self.weight.data:  # nn.Linear's initialisation, group by group
            nn.init.kaiming_uniform_(group, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        x = x.unflatten(-1, (self.n_groups, -1))  # (... G in)
        y = torch.einsum("...gi,goi->...go", x, self.weight)
        return y.flatten(-2) + self.bias

    def extra_repr(self):
        return (f"n_groups={self.n_groups}, in_features={self.in_features}, "
                f"out_features={self.out_features}")


def mixing_linear(n_members, in_features, out_features):
    """The linear map of one member's ``in_features`` to ``out_features``, for every
    member: a plain :class:`torch.nn.Linear` for one, else a :class:`GroupedLinear`."""
    if n_members == 1:
        return nn.Linear(in_features, out_features)
    return GroupedLinear(n_members, in_features, out_features)


def member_mean(outputs, member_mean):
    """The ensemble's output from its members' ``outputs`` (batch, n_members, d_output).

    ``"outputs"``: their mean. ``"probabilities"``: the log of the mean of their
    softmax probabilities, a vector of logits whose softmax is the members' mean
    probability (and whose argmax their most probable class on average).
    """
    if member_mean == "outputs":
        return outputs.mean(dim=1)
    log_mean = torch.logsumexp(torch.log_softmax(outputs, dim=-1), dim=1)
    return log_mean - math.log(outputs.shape[1])


def set_member_weights(linear, weight, bias):
    """Give ``linear`` (from :func:`mixing_linear`) each member's ``weight``, of shape
    (n_members, out_features, in_features) per member, and its ``bias``."""
    weight = torch.as_tensor(weight, dtype=linear.weight.dtype, device=linear.weight.device)
    bias = torch.as_tensor(bias, dtype=linear.bias.dtype, device=linear.bias.device)
    with torch.no_grad():
        linear.weight.copy_(weight.reshape(linear.weight.shape))
        linear.bias.copy_(bias.reshape(linear.bias.shape))
