"""Pure PyTorch S4D: the kernel, the layer with its recurrent step, and the network."""

from .dropout import SequenceDropout
from .kernel import S4DKernel
from .layer import S4D
from .model import S4Model, least_parameter_count
from .optim import param_groups

__all__ = ["S4D", "S4DKernel", "S4Model", "SequenceDropout", "least_parameter_count",
           "param_groups"]
