"""Parameter-efficient fine-tuning of pretrained S4 networks.

Pass a method to an estimator with ``pretrained=``::

    S4Classifier(pretrained=base, finetune=SDLoRA(updatable_channels_dim=8))

- :class:`LoRA`: low-rank adapters on the linear projections (and optionally the SSM);
- :class:`SDLoRA`: selective dimension tuning of the SSM plus LoRA (Galim et al., 2025).

The adapter modules themselves (pure PyTorch) are in :mod:`s4learn.peft.adapters`;
:func:`finetuning_network` (:mod:`s4learn.peft.pretrained`) prepares the copy of a
pretrained network that a method adapts.
"""

from .adapters import AdaptedS4DKernel, LoRALinear, count_merged_parameters, merge_adapters
from .methods import FineTuningMethod, LoRA, SDLoRA, WarmupRun, select_dimensions
from .pretrained import finetuning_network

__all__ = ["AdaptedS4DKernel", "FineTuningMethod", "LoRA", "LoRALinear", "SDLoRA",
           "WarmupRun", "count_merged_parameters", "finetuning_network", "merge_adapters",
           "select_dimensions"]
