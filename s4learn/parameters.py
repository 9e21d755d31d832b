"""What each constructor parameter of the estimators accepts: one table, checked in one place.

Every parameter of :class:`~s4learn.S4Classifier` and :class:`~s4learn.S4Regressor` has a
row in :data:`PARAMETER_RULES`, a list of the kinds of value it accepts (as
scikit-learn's ``_parameter_constraints``). :func:`check_parameters` checks them all and
raises :class:`InvalidParameterError` with one uniform message::

    lr must be a positive float, got 'a'
    batch_size must be a positive int or 'auto', got 0
"""

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .inputs import IMAGE_LAYOUTS, INPUT_TYPES, MISSING, SCALINGS, SEQUENCE_LAYOUTS
from .nn.kernel import INITS
from .nn.model import POOLINGS
from .nn.norm import NORMS


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter of the wrong type or out of range.

    Both a ValueError and a TypeError, as scikit-learn's error of the same name, so
    either ``except`` catches it. ``parameter`` names the parameter.
    """

    def __init__(self, message, parameter=None):
        super().__init__(message)
        self.parameter = parameter


class Rule(NamedTuple):
    """One kind of value a parameter accepts: a test and its description."""

    accepts: Callable[[object], bool]
    description: str


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_float(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def options(*values):
    """A rule accepting exactly the strings ``values``."""
    text = repr(values[0]) if len(values) == 1 else f"one of {values}"
    return Rule(lambda value: isinstance(value, str) and value in values, text)


def float_in(low, high, low_closed, high_closed):
    """A rule accepting a finite float between ``low`` and ``high``."""
    def accepts(value):
        if not _is_float(value):
            return False
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
        return above and below

    interval = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
    return Rule(accepts, f"a float in {interval}")


def instance_of(types, description):
    return Rule(lambda value: isinstance(value, types), description)


POSITIVE_INT = Rule(lambda value: _is_int(value) and value >= 1, "a positive int")
NON_NEGATIVE_INT = Rule(lambda value: _is_int(value) and value >= 0, "an int >= 0")
EVEN_STATE_SIZE = Rule(lambda value: _is_int(value) and value >= 2 and value % 2 == 0,
                       "an even int >= 2 (N/2 complex modes)")
POSITIVE_FLOAT = Rule(lambda value: _is_float(value) and value > 0, "a positive float")
NON_NEGATIVE_FLOAT = Rule(lambda value: _is_float(value) and value >= 0, "a float >= 0")
BOOL = instance_of((bool, np.bool_), "a bool")
NONE = Rule(lambda value: value is None, "None")
ANY = Rule(lambda value: True, "anything")  # checked where it is used, with its own message


def _is_device(value):
    if isinstance(value, torch.device):
        return True
    if not isinstance(value, str):
        return False
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return False
    return True


def _is_finetuning_method(value):
    from .peft import FineTuningMethod  # here: peft imports nn, not this module

    return isinstance(value, FineTuningMethod)


PARAMETER_RULES = {
    "d_model": [POSITIVE_INT],
    "n_layers": [POSITIVE_INT],
    "d_state": [EVEN_STATE_SIZE],
    "dropout": [float_in(0, 1, True, False)],
    "prenorm": [BOOL],
    "norm": [options(*NORMS)],
    "differences": [BOOL, options("auto", "log")],
    "bidirectional": [BOOL],
    "init": [options(*INITS)],
    "pool": [options("auto", *POOLINGS)],
    "dt_min": [POSITIVE_FLOAT, options("auto")],
    "dt_max": [POSITIVE_FLOAT, options("auto")],
    "lr": [POSITIVE_FLOAT],
    "weight_decay": [NON_NEGATIVE_FLOAT],
    "batch_size": [POSITIVE_INT, options("auto")],
    "predict_batch_size": [POSITIVE_INT],
    "max_epochs": [POSITIVE_INT],
    "min_steps": [NON_NEGATIVE_INT],
    "patience": [POSITIVE_INT, NONE],
    "validation_fraction": [float_in(0, 1, False, False)],
    "input_type": [options(*INPUT_TYPES)],
    "image_layout": [options(*IMAGE_LAYOUTS)],
    "sequence_layout": [options(*SEQUENCE_LAYOUTS)],
    "grayscale": [BOOL],
    "scaling": [options(*SCALINGS)],
    "missing": [options(*MISSING)],
    "num_workers": [NON_NEGATIVE_INT],
    "device": [options("auto"), Rule(_is_device, "a torch device such as 'cpu' or 'cuda:0'")],
    "random_state": [NONE, instance_of(numbers.Integral, "an int"),
                     instance_of(np.random.RandomState, "a numpy RandomState")],
    "verbose": [instance_of(numbers.Integral, "an int")],
    "callbacks": [NONE, instance_of((list, tuple), "a list of skorch callbacks")],
    "warm_start": [BOOL],
    "pretrained": [ANY],  # a model, a path or an S4Model: checked by load_pretrained
    "finetune": [NONE, Rule(_is_finetuning_method, "a method from s4learn.peft (LoRA, "
                                                   "SDLoRA)")],
    "class_weight": [NONE, options("balanced"), instance_of(dict, "a dict")],
    "precision": [options("float32", "bf16", "fp16")],
    "compile": [BOOL],
    "accelerator": [ANY],  # an accelerate.Accelerator or None: checked by check_accelerator
}


def describe(rules):
    """``"a positive int or 'auto'"``: the rules of a parameter in words."""
    texts = [rule.description for rule in rules]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]


def check_parameter(estimator, name):
    """The value of parameter ``name`` of ``estimator``, checked against its rules."""
    value = getattr(estimator, name)
    rules = PARAMETER_RULES[name]
    if not any(rule.accepts(value) for rule in rules):
        raise InvalidParameterError(f"{name} must be {describe(rules)}, got {value!r}", name)
    return value


def check_parameters(estimator):
    """Check every constructor parameter of ``estimator`` and that its device exists.

    Raises
    ------
    InvalidParameterError
        Naming the first parameter whose value is not accepted.
    """
    for name in estimator.get_params(deep=False):
        check_parameter(estimator, name)
    check_device(estimator.device)


def check_device(device):
    """InvalidParameterError when ``device`` names a device this machine does not have."""
    if device == "auto":
        return
    device = torch.device(device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidParameterError(f"device {str(device)!r} is not available: this "
                                        f"machine has no CUDA device; use 'cpu' or 'auto'",
                                        "device")
        if device.index is not None and device.index >= count:
            raise InvalidParameterError(
                f"device {str(device)!r} is not available: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}", "device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError("device 'mps' is not available on this machine",
                                    "device")
