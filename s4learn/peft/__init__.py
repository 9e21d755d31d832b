"""Parameter-efficient fine-tuning of pretrained S4 networks.

Pass a method to an estimator with ``pretrained=``::

    S4Classifier(pretrained=base, finetune=SDLoRA(updatable_channels_dim=8))

- :class:`LoRA`: low-rank adapters on the linear projections (and optionally the SSM);
- :class:`SDLoRA`: selective dimension tuning of the SSM plus LoRA (Galim et al., 2025).

The adapter modules themselves (pure PyTorch) are in :mod:`s4learn.peft.adapters`.
"""

from .adapters import AdaptedS4DKernel, LoRALinear, count_merged_parameters, merge_adapters
from .methods import FineTuningMethod, LoRA, SDLoRA, select_dimensions

__all__ = ["AdaptedS4DKernel", "FineTuningMethod", "LoRA", "LoRALinear", "SDLoRA",
           "count_merged_parameters", "merge_adapters", "select_dimensions"]
