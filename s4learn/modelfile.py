"""The model file: one safetensors file with a JSON record, read and written.

A model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file. Its
tensors are the network's ``state_dict`` (``network.<name>``) and the numeric arrays
among the fitted attributes (``attributes.<name>``); its metadata holds one JSON
record under the key ``"s4learn"``: the format and its version, the s4learn and torch
versions that wrote it, the estimator class, its constructor parameters, every fitted
attribute (arrays by reference to their tensor), the network's architecture and the
training history. Reading it parses JSON and raw tensor bytes only: no code from the
file is ever run, unlike a pickle.

This module knows the file, not the estimators: :mod:`s4learn.persistence` turns an
estimator into a record and back, and :func:`read_model_network` gives the network
alone (for ``pretrained=``).
"""

import hashlib
import json
import math
import os
import warnings

import joblib
import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .checkpoints import atomic_write
from .nn import S4Model, least_parameter_count

FORMAT = "s4learn-model"
FORMAT_VERSION = 2  # the newest version this s4learn reads
ESTIMATOR_FORMAT_VERSION = 1  # written for a bare estimator, so older s4learn reads it
PIPELINE_FORMAT_VERSION = 2  # a Pipeline of preprocessing steps and an estimator
METADATA_KEY = "s4learn"
CHECKSUM_KEY = "tensor_sha256"  # of the tensor payload, in the record
ESTIMATOR_CLASSES = ("S4Classifier", "S4Regressor")
NETWORK_PREFIX = "network."
ATTRIBUTE_PREFIX = "attributes."
# settings of S4Model in files written before they were constructor arguments
OLD_NETWORK_DEFAULTS = {"tie_dropout": False, "norm": "layer", "differences": False,
                        "log_differences": False}


def write_model_file(path, record, tensors):
    """Write ``record`` (JSON-able) and ``tensors`` to ``path``, atomically, with the
    checksum of the tensors in the record (``"tensor_sha256"``)."""
    record = {**record, CHECKSUM_KEY: tensor_checksum(tensors)}
    metadata = {METADATA_KEY: json.dumps(record, allow_nan=False)}
    with atomic_write(path) as file:
        file.write(safetensors_bytes(tensors, metadata=metadata))


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
            f"({s4learn_version()}) reads format versions up to {FORMAT_VERSION}: "
            f"upgrade s4learn to load it")
    return record


def read_tensors(path, record):
    """Every tensor of the model file ``path``, on the CPU, checked against the checksum
    in its ``record`` (files written before checksums were recorded have none)."""
    try:
        with safe_open(path, framework="pt", device="cpu") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, RuntimeError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)!r} is corrupt: its tensors cannot be read "
                         f"({error})") from None
    expected = record.get(CHECKSUM_KEY)
    if expected is not None and tensor_checksum(tensors) != expected:
        raise ValueError(f"{os.fspath(path)!r} is corrupt: its tensors do not match the "
                         f"checksum recorded when it was written")
    return tensors


def read_pickle(path, allow_pickle):
    """A joblib/pickle file's object, read only with ``allow_pickle``: it can run code."""
    if allow_pickle:
        warnings.warn(f"loading {os.fspath(path)!r} as a pickle (allow_pickle=True): a "
                      f"pickle runs the code it names, so load only files you trust",
                      UserWarning, stacklevel=3)
        return joblib.load(path)
    raise ValueError(
        f"{os.fspath(path)!r} is not an s4learn model file (as written by "
        f"s4learn.save_model). A joblib or pickle file can run any code when it is "
        f"loaded: if it comes from a source you trust, load it yourself with "
        f"joblib.load and pass the estimator, or call "
        f"s4learn.load_model(path, allow_pickle=True)")


def read_model_network(path):
    """``(network, attributes)`` of a model file: the S4Model and the fitted attributes."""
    record = read_record(path)
    tensors = read_tensors(path, record)
    decoder = RecordDecoder(tensors)
    network = build_network(decoder.decode(record["network"]), tensors, path)
    attributes = {name: decoder.decode(value) for name, value in record["attributes"].items()}
    return network, attributes


def network_config(network):
    """Constructor arguments that rebuild ``network`` (an S4Model) for its state_dict.

    Starts from ``network.config`` and takes what can change after construction (a
    new output layer, the dropout rate and kernel mode set for fine-tuning) from the
    modules themselves.
    """
    config = dict(getattr(network, "config", {}))
    config.update(d_input=network.d_input, d_output=network.d_output,
                  d_model=network.d_model, n_layers=len(network.layers),
                  prenorm=network.prenorm, pool=network.pool)
    if len(network.layers):
        layer = network.layers[0]
        config.update(d_state=layer.d_state, bidirectional=layer.bidirectional,
                      dropout=layer.dropout.p, mode=layer.mode,
                      ssm_lr=layer.kernel.ssm_settings.get("lr"))
    return config


def build_network(config, tensors, path):
    """The S4Model of ``config`` (:func:`network_config`) with the file's weights.

    The architecture is first built on torch's "meta" device, which allocates nothing,
    and its tensor shapes compared with those the file holds: a header that asks for
    more than the file contains is refused before any memory is allocated.
    """
    config = {**OLD_NETWORK_DEFAULTS, **config}
    state = {key[len(NETWORK_PREFIX):]: tensor for key, tensor in tensors.items()
             if key.startswith(NETWORK_PREFIX)}
    _check_sizes(config, sum(tensor.numel() for tensor in state.values()), path)
    try:
        with torch.device("meta"):
            skeleton = S4Model(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)!r} is corrupt: the network in its header "
                         f"cannot be built ({error})") from None
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    if expected != {key: tuple(value.shape) for key, value in state.items()}:
        raise ValueError(f"{os.fspath(path)!r} is corrupt: the network in its header does "
                         f"not match the tensors the file holds")
    with torch.random.fork_rng(devices=[]):  # its random weights are overwritten
        network = S4Model(**config)
    network.load_state_dict(state)
    return network


def _check_sizes(config, n_values, path):
    """ValueError where the header's sizes need more values than the file's tensors hold
    (:func:`~s4learn.nn.least_parameter_count`); the initial A of a layer is computed
    off the meta device, so this bound comes first."""
    names = ("d_input", "d_output", "d_model", "n_layers", "d_state")
    sizes = {name: config.get(name) for name in names}
    if not all(isinstance(size, int) and size >= 0 for size in sizes.values()):
        raise ValueError(f"{os.fspath(path)!r} is corrupt: the sizes of the network in its "
                         f"header are not counts ({list(sizes.values())})")
    needed = least_parameter_count(**sizes)
    if needed > n_values:
        raise ValueError(f"{os.fspath(path)!r} is corrupt: the network in its header does "
                         f"not match the tensors the file holds (it needs at least {needed} "
                         f"values, the file holds {n_values})")


def tensor_checksum(tensors):
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in the order of names."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fitted_attributes(model):
    """Every fitted attribute (name ending in ``_``) of ``model`` except ``net_``."""
    return {name: value for name, value in vars(model).items()
            if name.endswith("_") and not name.startswith("__") and name != "net_"}


def s4learn_version():
    from . import __version__

    return __version__


class RecordEncoder:
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


class RecordDecoder:
    """The inverse of :class:`RecordEncoder`, reading arrays from ``tensors``."""

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
