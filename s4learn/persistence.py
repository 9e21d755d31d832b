"""Saving fitted estimators without pickle, and loading them: ``save_model``, ``load_model``.

The file itself (a safetensors file with one JSON record, which runs no code when read)
is :mod:`s4learn.modelfile`'s; this module turns a fitted estimator into that record
and back. A :class:`~sklearn.pipeline.Pipeline` of
:class:`~s4learn.preprocessing.SequenceWindows` and an estimator is saved as the
estimator with the steps before it (``"steps"``: class, parameters and fitted
attributes of each; format version 2).
"""

import os
import warnings

import torch
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from .estimators import S4Classifier, S4Regressor, constructor_arguments
from .inputs import InputScaling
from .modelfile import (
    ATTRIBUTE_PREFIX,
    ESTIMATOR_CLASSES,
    ESTIMATOR_FORMAT_VERSION,
    FORMAT,
    NETWORK_PREFIX,
    PIPELINE_FORMAT_VERSION,
    RecordDecoder,
    RecordEncoder,
    build_network,
    fitted_attributes,
    network_config,
    read_pickle,
    read_record,
    read_tensors,
    s4learn_version,
    write_model_file,
)
from .parameters import DEPRECATED, check_parameters
from .peft import AdaptedS4DKernel, LoRALinear
from .preprocessing import SequenceWindows

# the preprocessing steps a model file may hold before the estimator
STEP_CLASSES = {"SequenceWindows": SequenceWindows}
ESTIMATORS = {"S4Classifier": S4Classifier, "S4Regressor": S4Regressor}
# what a model file may set on the estimator: the fitted attributes of both estimators
# (differences_ as 0.1 wrote it); anything else in a file is refused
FITTED_ATTRIBUTES = {
    "classes_", "n_outputs_", "y_ndim_", "target_mean_", "target_scale_", "noise_std_",
    "n_features_in_",
    "feature_names_in_", "input_shape_", "n_channels_in_", "n_timepoints_", "pixel_scale_",
    "pixel_range_",
    "scaling_", "input_mean_", "input_scale_", "pool_", "difference_channels_",
    "differences_", "n_epochs_", "n_params_", "n_trainable_params_", "torch_rng_state_"}


def save_model(estimator, path):
    """Write a fitted S4Classifier or S4Regressor to ``path`` (a ``.safetensors`` file).

    The file is written atomically (a temporary file moved into place). Constructor
    parameters that JSON cannot hold (callbacks, a pretrained estimator or network, a
    fine-tuning method, a ``RandomState``) are saved as None and listed in the record
    under ``"parameters_not_saved"``; they only matter for a later ``fit``.

    Parameters
    ----------
    estimator : S4Classifier, S4Regressor or Pipeline
        A fitted estimator, or a fitted Pipeline of :class:`SequenceWindows` steps and
        one. A network that still holds fine-tuning adapters must be merged first
        (:meth:`~s4learn.S4Classifier.merge`).
    path : str or path-like
        Destination file.
    """
    if os.path.isdir(path):
        example = os.path.join(os.fspath(path), "model.safetensors")
        raise ValueError(f"{os.fspath(path)!r} is a folder: save_model writes one file; "
                         f"give its path, such as {example!r}")
    steps, estimator = _pipeline_steps(estimator)
    _check_savable(estimator)
    network = estimator.net_.module_
    tensors = {NETWORK_PREFIX + name: tensor.detach().cpu().contiguous()
               for name, tensor in network.state_dict().items()}
    encoder = RecordEncoder(tensors)
    parameters, not_saved = _encode_parameters(estimator, encoder)
    record = {
        "format": FORMAT,
        "format_version": ESTIMATOR_FORMAT_VERSION,
        "s4learn_version": s4learn_version(),
        "torch_version": torch.__version__,
        "estimator": type(estimator).__name__,
        "parameters": parameters,
        "parameters_not_saved": not_saved,
        "attributes": {name: encoder.encode(value, ATTRIBUTE_PREFIX + name)
                       for name, value in estimator_attributes(estimator).items()},
        "network": encoder.encode(network_config(network), "network_config"),
        "history": encoder.encode(list(estimator.net_.history), "history"),
    }
    if steps is not None:
        record.update(format_version=PIPELINE_FORMAT_VERSION,
                      steps=_encode_steps(steps, encoder))
    write_model_file(path, record, tensors)


def load_model(path, *, allow_pickle=False, device=None):
    """Read an estimator written by :func:`save_model`.

    The network is rebuilt from the recorded architecture, its weights are read onto
    the CPU, and the skorch net is built as ``fit`` builds it, so ``predict`` gives
    exactly what it gave before saving. The optimizer state is not saved: a further
    ``fit`` with ``warm_start=True`` starts a fresh optimizer.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model`.
    allow_pickle : bool, default=False
        Also read joblib/pickle files (as written by ``joblib.dump``). Loading a
        pickle can run any code the file contains: only for files you trust.
    device : str or None, default=None
        Torch device of the loaded network, which also becomes the estimator's
        ``device`` parameter. None keeps the saved ``device`` parameter, or uses the
        CPU (with a warning) when it names CUDA and none is available.

    Returns
    -------
    S4Classifier, S4Regressor or Pipeline
        A Pipeline when a Pipeline was saved.

    Raises
    ------
    ValueError
        If ``path`` is not an s4learn model file (or a pickle without
        ``allow_pickle=True``), or was written by a newer version of the format.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{os.fspath(path)!r} is not a file: load_model reads a model file "
                         f"written by s4learn.save_model")
    if device is not None:
        check_parameters({"device": device})
    model = read_model_file(path, allow_pickle, device)
    estimator = model[-1] if isinstance(model, Pipeline) else model
    if type(estimator).__name__ not in ESTIMATOR_CLASSES or not hasattr(estimator, "net_"):
        raise TypeError(f"{os.fspath(path)!r} holds a {type(model).__name__}, not a fitted "
                        f"S4Classifier or S4Regressor")
    return model


def read_model_file(path, allow_pickle, device=None):
    """The object in ``path``: an estimator from a model file, or (``allow_pickle``) any
    unpickled object; see :func:`load_model`."""
    record = read_record(path)
    if record is None:
        return read_pickle(path, allow_pickle)
    return estimator_from_record(path, record, device)


def estimator_attributes(estimator):
    """The fitted attributes saved in a model file (the input transform's state flat)."""
    attributes = fitted_attributes(estimator)
    transform = attributes.pop("input_scaling_", None)
    if transform is not None:
        attributes.update(transform.fitted_state())
    return attributes


def estimator_from_record(path, record, device):
    """The fitted estimator (or Pipeline) that a model file's record describes."""
    name = record["estimator"]
    if name not in ESTIMATOR_CLASSES:
        raise ValueError(f"{os.fspath(path)!r} holds an unknown estimator class {name!r}")
    tensors = read_tensors(path, record)
    decoder = RecordDecoder(tensors)
    parameters = {key: decoder.decode(value) for key, value in record["parameters"].items()}
    parameters["device"] = _load_device(parameters.get("device", "auto"), device)
    _check_parameter_names(path, record, parameters)
    _check_attribute_names(path, record["attributes"])
    attributes = _current_attributes(
        {key: decoder.decode(value) for key, value in record["attributes"].items()},
        parameters.get("missing", "error"))
    network = build_network(decoder.decode(record["network"]), tensors, path)
    estimator = ESTIMATORS[name].from_fitted_state(
        parameters, attributes, network, History(decoder.decode(record["history"])))
    if "steps" in record:
        return _decode_pipeline(record, estimator, decoder)
    return estimator


def _pipeline_steps(model):
    """``(steps, estimator)``: the steps before the estimator of a Pipeline, or None."""
    if not isinstance(model, Pipeline):
        return None, model
    steps = model.steps[:-1]
    for name, step in steps:
        if type(step).__name__ not in STEP_CLASSES:
            raise TypeError(f"save_model saves a Pipeline of "
                            f"{', '.join(STEP_CLASSES)} steps and an S4Classifier or "
                            f"S4Regressor; step {name!r} is a {type(step).__name__}")
    return model.steps, model[-1]


def _encode_steps(steps, encoder):
    """Each step's name, class, parameters and fitted attributes (the estimator: its name)."""
    encoded = []
    for index, (name, step) in enumerate(steps):
        entry = {"name": name, "class": type(step).__name__}
        if index < len(steps) - 1:
            key = f"steps.{index}"
            entry["parameters"] = encoder.encode(step.get_params(), f"{key}.parameters")
            entry["attributes"] = {attribute: encoder.encode(value, f"{key}.{attribute}")
                                   for attribute, value in fitted_attributes(step).items()}
        encoded.append(entry)
    return encoded


def _decode_pipeline(record, estimator, decoder):
    steps = []
    for entry in record["steps"][:-1]:
        step_class = STEP_CLASSES.get(entry["class"])
        if step_class is None:
            raise ValueError(f"unknown preprocessing step class {entry['class']!r} in the "
                             f"model file")
        step = step_class(**decoder.decode(entry["parameters"]))
        for attribute, value in entry["attributes"].items():
            setattr(step, attribute, decoder.decode(value))
        steps.append((entry["name"], step))
    return Pipeline([*steps, (record["steps"][-1]["name"], estimator)])


def _check_savable(estimator):
    if type(estimator).__name__ not in ESTIMATOR_CLASSES:
        raise TypeError(f"save_model saves an S4Classifier or S4Regressor, got "
                        f"{type(estimator).__name__}")
    check_is_fitted(estimator)
    if any(isinstance(module, (LoRALinear, AdaptedS4DKernel))
           for module in estimator.net_.module_.modules()):
        raise ValueError("the network holds fine-tuning adapters: call estimator.merge() "
                         "to fold them into plain weights before save_model")


def _check_attribute_names(path, attributes):
    _refuse_unknown(path, attributes, FITTED_ATTRIBUTES,
                    "attributes that no fitted s4learn estimator has",
                    "it was not written by s4learn.save_model, or it was changed")


def _refuse_unknown(path, names, known, what, why):
    """ValueError naming the ``names`` (of a model file at ``path``) not in ``known``."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{os.fspath(path)!r} sets {what}: {unknown[:5]}; {why}")


def _current_attributes(attributes, missing):
    """A model file's attributes as the estimator holds them: the input transform as
    ``input_scaling_``, and ``differences_`` (written by 0.1) as ``difference_channels_``."""
    attributes = dict(attributes)
    if "differences_" in attributes:
        differences = attributes.pop("differences_")
        attributes["difference_channels_"] = {True: "linear", False: "none"}.get(
            differences, differences)
    attributes["input_scaling_"] = InputScaling.from_fitted_state(
        missing, **{name: attributes.pop(name)
                    for name in ("scaling_", "input_mean_", "input_scale_")})
    return attributes


def _check_parameter_names(path, record, parameters):
    name = record["estimator"]
    _refuse_unknown(path, parameters, set(ESTIMATORS[name]().get_params()) | set(DEPRECATED),
                    f"parameters of {name} that this s4learn ({s4learn_version()}) does "
                    f"not have", f"it was written by s4learn {record.get('s4learn_version')}")


def _encode_parameters(estimator, encoder):
    """JSON of the constructor parameters; those JSON cannot hold become None."""
    parameters, not_saved = {}, []
    for name, value in constructor_arguments(estimator).items():
        trial = RecordEncoder({})
        try:
            parameters[name] = trial.encode(value, f"parameters.{name}")
        except TypeError:
            parameters[name] = None
            not_saved.append(name)
            continue
        encoder.tensors.update(trial.tensors)
    return parameters, not_saved


def _load_device(saved, requested):
    if requested is not None:
        return requested
    if str(saved).startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"the model was saved with device={saved!r}, but CUDA is not "
                      f"available: it is loaded on the CPU (device='cpu')", stacklevel=4)
        return "cpu"
    return saved
