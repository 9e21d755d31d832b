"""The network an estimator trains: new, from a pretrained model, or adapted to fine-tune.

Everything here takes plain values (settings, shapes, the choices made from the data)
and returns an :class:`~s4learn.nn.S4Model`; nothing reads an estimator.
"""

import os
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import NotFittedError

from .modelfile import read_model_network, read_pickle, read_record
from .nn import S4Model, least_parameter_count
from .parameters import network_settings
from .peft import count_merged_parameters, finetuning_network
from .training import resolve_device

LOCAL_MEMORY = 20  # steps the slowest channels remember at first with dt_min="auto"
TRAINING_BYTES_PER_PARAMETER = 16  # float32 weights, gradients and AdamW's two moments
PREDICT_MEMORY_BUDGET = 2**30  # bytes of activations one prediction batch may hold
# activations of one sample in prediction, per step and channel of d_model: 33 to 50
# bytes measured on the CPU with mean pooling (float32, one- and two-directional,
# L=4096 to 65,536), 50 with the statistics pooling (causal, L=65,536), which holds
# every tap at once; 64 leaves room for the two-directional layers
PREDICT_BYTES_PER_STEP = 64
MOST_PREDICT_BATCH = 256


class DataShape(NamedTuple):
    """What the network's choices depend on, read from the training data."""

    n_channels: int  # input channels the network reads (missing indicators included)
    n_outputs: int
    length: int  # steps of the longest training sequence
    is_image: bool
    columns_differ: bool  # a table whose columns differ in scale


class NetworkChoice(NamedTuple):
    """The network to train and what was chosen for it."""

    network: S4Model
    pool: str  # "stats", "mean" or "last"
    difference_channels: str  # "none", "linear" or "log"


class PretrainedModel(NamedTuple):
    """A pretrained network and the fitted attributes of the model it came from."""

    network: S4Model
    attributes: dict  # empty for a bare S4Model


def pooling(pool, shape):
    """How the network summarises a sequence: "last" for a table of unlike columns.

    A record of measurements in different units is read column by column into one
    state, as a linear model weighs each column; series, images and tables of like
    columns are summarised by statistics of their steps' features at every block
    (``pool="stats"`` of :class:`~s4learn.nn.S4Model`): the mean, maximum, share of
    positive steps and standard deviation of each channel.
    """
    if pool != "auto":
        return pool
    return "last" if shape.columns_differ else "stats"


def difference_channels(setting, shape):
    """``"none"``, ``"linear"`` or ``"log"``: "auto" is "log" except for unlike columns."""
    if setting != "auto":
        return setting
    return "none" if shape.columns_differ else "log"


def dt_range(dt_min, dt_max, length, whole_sequence):
    """``(dt_min, dt_max)`` with "auto" resolved.

    ``1 / dt`` is about how many steps a channel remembers at first. For the longest
    training sequence of L steps, "auto" is ``dt_min = 1 / min(L, 20)`` for local
    patterns pooled by their mean, ``1 / L`` where the whole sequence is needed, and
    ``dt_max = min(1, 100 / L)``: the S4 defaults (0.001, 0.1) at L = 1000.
    """
    if dt_min == "auto":
        dt_min = 1.0 / (length if whole_sequence else min(length, LOCAL_MEMORY))
    if dt_max == "auto":
        dt_max = min(1.0, 100.0 / length)
    if dt_min > dt_max:
        raise ValueError(f"dt_min must not exceed dt_max, got {dt_min!r} > {dt_max!r}")
    return dt_min, dt_max


def new_network(shape, architecture, *, dropout, dt_min, dt_max, pool, differences, norm,
                prenorm, member_mean="outputs"):
    """A freshly initialised S4Model for data of ``shape``.

    ``architecture`` holds the estimator's network settings
    (:func:`s4learn.parameters.network_settings`); ``pool`` and ``differences`` are
    resolved by :func:`pooling` and :func:`difference_channels`; ``member_mean`` is how
    an ensemble's members combine ("probabilities" for a classifier).
    """
    check_trainable(shape, architecture)
    whole_sequence = pool == "last" or shape.is_image
    dt_min, dt_max = dt_range(dt_min, dt_max, shape.length, whole_sequence)
    return S4Model(d_input=shape.n_channels, d_output=shape.n_outputs, dropout=dropout,
                   norm=norm, prenorm=prenorm, pool=pool, dt_min=dt_min, dt_max=dt_max,
                   differences=differences != "none", log_differences=differences == "log",
                   member_mean=member_mean, **architecture)


def check_trainable(shape, architecture):
    """ValueError where a network of ``architecture`` for data of ``shape`` could not be
    trained in this machine's memory, before any of it is allocated."""
    sizes = {name: architecture[name] for name in ("d_model", "n_layers", "d_state")}
    count = architecture.get("n_members", 1) * least_parameter_count(
        d_input=shape.n_channels, d_output=shape.n_outputs, **sizes)
    needed, memory = count * TRAINING_BYTES_PER_PARAMETER, physical_memory()
    if memory is not None and needed > memory:
        settings = ", ".join(f"{name}={value}" for name, value in sizes.items())
        raise ValueError(
            f"{settings} make a network of at least {count:.3g} parameters: training it "
            f"takes at least {needed / 2**30:.3g} GiB (weights, gradients and the "
            f"optimizer's state), more than this machine's {memory / 2**30:.3g} GiB; "
            f"choose a smaller d_model, n_layers or d_state")


def physical_memory():
    """Bytes of this machine's memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def predict_batch_size(network, steps):
    """Sequences of ``steps`` steps that ``network`` predicts at a time within
    :data:`PREDICT_MEMORY_BUDGET` (1 GiB), at least 1 and at most 256."""
    per_sequence = PREDICT_BYTES_PER_STEP * network.width * max(steps, 1)
    return int(min(MOST_PREDICT_BATCH, max(1, PREDICT_MEMORY_BUDGET // per_sequence)))


def network_difference_channels(network):
    """What ``network`` reads beside each channel: "none", "linear" or "log"."""
    if network.log_differences:
        return "log"
    return "linear" if network.differences else "none"


def load_pretrained(pretrained, allow_pickle=False):
    """The :class:`PretrainedModel` in a fitted estimator, a model file or an S4Model.

    The network is the pretrained object itself, not a copy. A path must be a file
    written by :func:`s4learn.save_model`; joblib/pickle files, which can run code when
    loaded, are read only with ``allow_pickle=True``.
    """
    if isinstance(pretrained, (str, os.PathLike)):
        if not os.path.isfile(pretrained):
            raise ValueError(f"pretrained model file not found: {os.fspath(pretrained)!r}")
        if read_record(pretrained) is not None:
            return PretrainedModel(*read_model_network(pretrained))
        pretrained = read_pickle(pretrained, allow_pickle)
    if hasattr(pretrained, "steps"):  # a Pipeline of SequenceWindows and the estimator
        pretrained = pretrained.steps[-1][1]
    if isinstance(pretrained, S4Model):
        return PretrainedModel(pretrained, {})
    network = getattr(getattr(pretrained, "net_", None), "module_", None)
    if isinstance(network, S4Model):
        return PretrainedModel(network, vars(pretrained))
    if type(pretrained).__name__ in ("S4Classifier", "S4Regressor"):
        raise NotFittedError(f"pretrained is an unfitted {type(pretrained).__name__}: fit "
                             f"it first")
    raise TypeError(f"pretrained must be a fitted S4Classifier or S4Regressor, a path to "
                    f"one saved with s4learn.save_model, or an s4learn.nn.S4Model; got "
                    f"{type(pretrained).__name__}")


def same_task(pretrained, classes=None, n_outputs=None):
    """Whether the pretrained output layer fits the new task (a bare S4Model: yes)."""
    if not pretrained.attributes:
        return True
    if classes is not None:
        old_classes = pretrained.attributes.get("classes_")
        return old_classes is not None and np.array_equal(old_classes, classes)
    return pretrained.attributes.get("n_outputs_") == n_outputs


def finetuned_network(pretrained, shape, keep_head, *, device, dropout, method, warm_up):
    """The network to fine-tune: a copy of the pretrained one, adapted by ``method``.

    ``warm_up`` trains a :class:`~s4learn.peft.WarmupRun` on the new data, for the
    methods that choose what to tune from such a run.
    """
    network = finetuning_network(pretrained.network, shape.n_channels, shape.n_outputs,
                                 keep_head=keep_head, device=device, dropout=dropout)
    if method is None:
        return network
    run = method.warmup_run(network)
    warmed_up = None if run is None else warm_up(run)
    return method.adapt(network, warmed_up)


def network_to_train(shape, parameters, task, *, pool, norm, prenorm, warm_up):
    """The :class:`NetworkChoice` for an estimator's ``parameters`` (a dict, as
    ``get_params`` gives them) and data of ``shape``: a new network, or with
    ``pretrained`` one adapted by ``finetune``.

    ``task`` is ``{"classes": ...}`` or ``{"n_outputs": ...}`` (whether a pretrained
    output layer fits, :func:`same_task`); ``warm_up`` trains a fine-tuning method's
    warm-up run on the data.
    """
    if parameters["pretrained"] is None:
        if parameters["finetune"] is not None:
            raise ValueError("finetune needs a pretrained model: pass pretrained=")
        pool = pooling(pool, shape)
        differences = difference_channels(parameters["difference_channels"], shape)
        network = new_network(
            shape, network_settings(parameters), dropout=parameters["dropout"],
            dt_min=parameters["dt_min"], dt_max=parameters["dt_max"], pool=pool,
            differences=differences, norm=norm, prenorm=prenorm,
            member_mean="probabilities" if "classes" in task else "outputs")
        return NetworkChoice(network, pool, differences)
    pretrained = load_pretrained(parameters["pretrained"])
    network = finetuned_network(
        pretrained, shape, same_task(pretrained, **task),
        device=resolve_device(parameters["device"]), dropout=parameters["dropout"],
        method=parameters["finetune"], warm_up=warm_up)
    return NetworkChoice(network, network.pool, network_difference_channels(network))


def parameter_counts(network):
    """``(n_params, n_trainable_params)``: all parameters (adapters merged) and trained."""
    trainable = sum(parameter.numel() for parameter in network.parameters()
                    if parameter.requires_grad)
    return count_merged_parameters(network), trainable
