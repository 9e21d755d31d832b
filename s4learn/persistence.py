"""Saving fitted estimators without pickle: one safetensors file with a JSON record.

A model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file. Its
tensors are the network's ``state_dict`` (``network.<name>``) and the numeric arrays
among the fitted attributes (``attributes.<name>``); its metadata holds one JSON
record under the key ``"s4learn"``: the format and its version, the s4learn and torch
versions that wrote it, the estimator class, its constructor parameters, every fitted
attribute (arrays by reference to their tensor), the network's architecture and the
training history. A :class:`~sklearn.pipeline.Pipeline` of
:class:`~s4learn.preprocessing.SequenceWindows` and an estimator is saved as the
estimator with the steps before it (``"steps"``: class, parameters and fitted
attributes of each; format version 2). Reading it parses JSON and raw tensor bytes
only: no code from the file is ever run, unlike a pickle.
"""

import json
import math
import os
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from .checkpoints import _temporary_file
from .nn import S4Model
from .peft import AdaptedS4DKernel, LoRALinear
from .preprocessing import SequenceWindows

FORMAT = "s4learn-model"
FORMAT_VERSION = 2  # the newest version this s4learn reads
ESTIMATOR_FORMAT_VERSION = 1  # written for a bare estimator, so older s4learn reads it
PIPELINE_FORMAT_VERSION = 2  # a Pipeline of preprocessing steps and an estimator
# the preprocessing steps a model file may hold before the estimator
STEP_CLASSES = {"SequenceWindows": SequenceWindows}
METADATA_KEY = "s4learn"
ESTIMATOR_CLASSES = ("S4Classifier", "S4Regressor")
NETWORK_PREFIX = "network."
ATTRIBUTE_PREFIX = "attributes."


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
    steps, estimator = _pipeline_steps(estimator)
    _check_savable(estimator)
    network = estimator.net_.module_
    tensors = {NETWORK_PREFIX + name: tensor.detach().cpu().contiguous()
               for name, tensor in network.state_dict().items()}
    encoder = _Encoder(tensors)
    parameters, not_saved = _encode_parameters(estimator, encoder)
    record = {
        "format": FORMAT,
        "format_version": ESTIMATOR_FORMAT_VERSION,
        "s4learn_version": _s4learn_version(),
        "torch_version": torch.__version__,
        "estimator": type(estimator).__name__,
        "parameters": parameters,
        "parameters_not_saved": not_saved,
        "attributes": {name: encoder.encode(value, ATTRIBUTE_PREFIX + name)
                       for name, value in fitted_attributes(estimator).items()},
        "network": encoder.encode(network_config(network), "network_config"),
        "history": encoder.encode(list(estimator.net_.history), "history"),
    }
    if steps is not None:
        record.update(format_version=PIPELINE_FORMAT_VERSION,
                      steps=_encode_steps(steps, encoder))
    metadata = {METADATA_KEY: json.dumps(record, allow_nan=False)}
    with _temporary_file(Path(path)) as file:
        file.write(safetensors_bytes(tensors, metadata=metadata))


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
    if record is not None:
        return _estimator_from_record(path, record, device)
    if allow_pickle:
        return joblib.load(path)
    raise ValueError(
        f"{os.fspath(path)!r} is not an s4learn model file (as written by "
        f"s4learn.save_model). A joblib or pickle file can run any code when it is "
        f"loaded: if it comes from a source you trust, load it yourself with "
        f"joblib.load and pass the estimator, or call "
        f"s4learn.load_model(path, allow_pickle=True)")


def read_record(path):
    """The JSON record of an s4learn model file, or None if ``path`` is not one.

    Only the file's header is read; nothing in it is executed.
    """
    try:
        with safe_open(path, framework="pt", device="cpu") as file:
            metadata = file.metadata() or {}
    except SafetensorError:
        return None
    try:
        record = json.loads(metadata.get(METADATA_KEY, ""))
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} was written in s4learn model format version {version} "
            f"(by s4learn {record.get('s4learn_version')}); this s4learn "
            f"({_s4learn_version()}) reads format versions up to {FORMAT_VERSION}: "
            f"upgrade s4learn to load it")
    return record


def fitted_attributes(estimator):
    """Every fitted attribute (name ending in ``_``) of ``estimator`` except ``net_``."""
    return {name: value for name, value in vars(estimator).items()
            if name.endswith("_") and not name.startswith("__") and name != "net_"}


def network_config(network):
    """Constructor arguments that rebuild ``network`` (an S4Model) for its state_dict.

    Starts from ``network.config`` and takes what can change after construction (a
    new output layer, the dropout rate and kernel mode set for fine-tuning) from the
    modules themselves.
    """
    config = dict(getattr(network, "config", {}))
    config.update(d_input=network.d_input, d_output=network.decoder.out_features,
                  d_model=network.encoder.out_features, n_layers=len(network.layers),
                  prenorm=network.prenorm, pool=network.pool)
    if len(network.layers):
        layer = network.layers[0]
        config.update(d_state=layer.d_state, bidirectional=layer.bidirectional,
                      dropout=layer.dropout.p, mode=layer.mode,
                      ssm_lr=layer.kernel.ssm_settings.get("lr"))
    return config


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


def _encode_parameters(estimator, encoder):
    """JSON of the constructor parameters; those JSON cannot hold become None."""
    parameters, not_saved = {}, []
    for name, value in estimator.get_params(deep=False).items():
        trial = _Encoder({})
        try:
            parameters[name] = trial.encode(value, f"parameters.{name}")
        except TypeError:
            parameters[name] = None
            not_saved.append(name)
            continue
        encoder.tensors.update(trial.tensors)
    return parameters, not_saved


def _estimator_from_record(path, record, device):
    from . import estimators  # here: estimators imports this module (pretrained= paths)

    name = record["estimator"]
    if name not in ESTIMATOR_CLASSES:
        raise ValueError(f"{os.fspath(path)!r} holds an unknown estimator class {name!r}")
    with safe_open(path, framework="pt", device="cpu") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    decoder = _Decoder(tensors)
    parameters = {name: decoder.decode(value) for name, value in record["parameters"].items()}
    parameters["device"] = _load_device(parameters.get("device", "auto"), device)
    estimator_class = getattr(estimators, name)
    unknown = sorted(set(parameters) - set(estimator_class().get_params(deep=False)))
    if unknown:
        raise ValueError(f"{os.fspath(path)!r} sets parameters of {name} that this s4learn "
                         f"({_s4learn_version()}) does not have: {unknown}; it was written "
                         f"by s4learn {record.get('s4learn_version')}")
    estimator = estimator_class(**parameters)
    for attribute, value in record["attributes"].items():
        setattr(estimator, attribute, decoder.decode(value))
    network = _network(decoder.decode(record["network"]), tensors)
    with torch.random.fork_rng(devices=[]):
        estimator.net_ = estimator._build_net(network)
    estimator.net_.history = History(decoder.decode(record["history"]))
    if "steps" in record:
        return _decode_pipeline(record, estimator, decoder)
    return estimator


def _network(config, tensors):
    with torch.random.fork_rng(devices=[]):  # its random weights are overwritten
        network = S4Model(**config)
    state = {key[len(NETWORK_PREFIX):]: tensor for key, tensor in tensors.items()
             if key.startswith(NETWORK_PREFIX)}
    network.load_state_dict(state)
    return network


def _load_device(saved, requested):
    if requested is not None:
        return requested
    if str(saved).startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"the model was saved with device={saved!r}, but CUDA is not "
                      f"available: it is loaded on the CPU (device='cpu')", stacklevel=4)
        return "cpu"
    return saved


def _s4learn_version():
    from . import __version__

    return __version__


class _Encoder:
    """Values to JSON; numeric arrays and tensors go into ``tensors`` by name.

    Plain JSON (None, bool, int, str, list) stays as it is; every other value becomes
    an object with one tag key: ``tuple``, ``dict`` (string keys), ``dict_items`` (a
    list of key/value pairs, for other keys), ``float`` (non-finite), ``scalar``
    (numpy scalars, with their dtype), ``array`` (numeric, stored as a tensor),
    ``array_values`` (string/object arrays, with dtype and shape) and ``tensor``
    (torch).
    """

    def __init__(self, tensors):
        self.tensors = tensors

    def encode(self, value, key):
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, list):
            return [self.encode(item, f"{key}.{i}") for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [self.encode(item, f"{key}.{i}") for i, item in enumerate(value)]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self.encode(v, f"{key}.{k}") for k, v in value.items()}}
        if isinstance(value, dict):
            return {"dict_items": [[self.encode(k, f"{key}.{i}.key"),
                                    self.encode(v, f"{key}.{i}")]
                                   for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, np.generic):
            return {"scalar": value.dtype.str, "value": self.encode(value.item(), key)}
        if isinstance(value, np.ndarray):
            return self._encode_array(value, key)
        if isinstance(value, torch.Tensor):
            self.tensors[key] = value.detach().cpu().contiguous()
            return {"tensor": key}
        raise TypeError(f"cannot save a value of type {type(value).__name__} ({key})")

    def _encode_array(self, array, key):
        if array.dtype.kind in "biuf":
            native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            self.tensors[key] = torch.from_numpy(native.copy())
            return {"array": key, "dtype": array.dtype.str}
        if array.dtype.kind in "OU":
            values = [self.encode(item, f"{key}.{i}") for i, item in enumerate(array.flat)]
            return {"array_values": values, "dtype": array.dtype.str,
                    "shape": list(array.shape)}
        raise TypeError(f"cannot save an array of dtype {array.dtype} ({key})")


class _Decoder:
    """The inverse of :class:`_Encoder`, reading arrays from ``tensors``."""

    def __init__(self, tensors):
        self.tensors = tensors

    def decode(self, value):
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "tuple" in value:
            return tuple(self.decode(item) for item in value["tuple"])
        if "dict" in value:
            return {k: self.decode(v) for k, v in value["dict"].items()}
        if "dict_items" in value:
            return {self.decode(k): self.decode(v) for k, v in value["dict_items"]}
        if "float" in value:
            return float(value["float"])
        if "scalar" in value:
            return np.dtype(value["scalar"]).type(self.decode(value["value"]))
        if "array" in value:
            return self.tensors[value["array"]].numpy().astype(value["dtype"], copy=False)
        if "array_values" in value:
            return self._decode_values(value)
        if "tensor" in value:
            return self.tensors[value["tensor"]]
        raise ValueError(f"unknown entry in the model record: {sorted(value)}")

    def _decode_values(self, value):
        dtype = np.dtype(value["dtype"])
        items = [self.decode(item) for item in value["array_values"]]
        if dtype.kind == "U":
            return np.array(items, dtype=dtype).reshape(value["shape"])
        array = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):  # item by item: sequences stay single objects
            array[i] = item
        return array.reshape(value["shape"])
