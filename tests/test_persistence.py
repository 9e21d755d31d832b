"""Saving and loading fitted estimators in the pickle-free s4learn model format."""

import json
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from s4learn import S4Classifier, S4Regressor, load_model, save_model
from s4learn.inputs import InputScaling
from s4learn.modelfile import FORMAT_VERSION, fitted_attributes
from s4learn.networks import load_pretrained
from s4learn.peft import LoRA
from s4learn.persistence import FITTED_ATTRIBUTES, estimator_attributes

TINY = dict(d_model=8, n_layers=1, d_state=8, dt_min=0.01, dt_max=1.0, max_epochs=2,
            random_state=0)


@pytest.fixture(scope="module")
def table():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(60, 12), columns=[f"step_{i}" for i in range(12)])
    return X, np.where(X.to_numpy().sum(axis=1) > 0, "up", "down")


@pytest.fixture(scope="module")
def classifier(table):
    X, y = table
    return S4Classifier(**TINY).fit(X, y)


def assert_same_value(a, b):
    assert type(a) is type(b)
    if isinstance(a, InputScaling):
        for name, value in a.fitted_state().items():
            assert_same_value(b.fitted_state()[name], value)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def test_classifier_round_trip_is_exact(classifier, table, tmp_path):
    X, _ = table
    save_model(classifier, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert type(loaded) is S4Classifier
    assert np.array_equal(loaded.predict_proba(X), classifier.predict_proba(X))
    assert np.array_equal(loaded.predict(X), classifier.predict(X))
    assert loaded.predict(X).dtype == classifier.predict(X).dtype  # string labels
    assert list(loaded.feature_names_in_) == list(X.columns)
    attributes = fitted_attributes(classifier)
    assert fitted_attributes(loaded).keys() == attributes.keys()
    for name, value in attributes.items():
        assert_same_value(getattr(loaded, name), value)
    assert loaded.get_params() == classifier.get_params()
    assert list(loaded.net_.history) == list(classifier.net_.history)
    with pytest.raises(ValueError, match="feature names"):  # still checks the columns
        loaded.predict(X.rename(columns={"step_0": "other"}))


def test_regressor_with_2d_targets_round_trip_is_exact(tmp_path):
    rng = np.random.RandomState(1)
    X = rng.randn(40, 10, 2)
    y = np.stack([X.sum(axis=(1, 2)), X[:, -1, 0]], axis=1) * 100
    model = S4Regressor(**TINY).fit(X, y)
    save_model(model, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).shape == (40, 2)
    assert loaded.target_mean_.dtype == np.float64


def test_parameters_json_cannot_hold_are_saved_as_none(table, tmp_path):
    from skorch.callbacks import EpochTimer

    X, y = table
    model = S4Classifier(**TINY, callbacks=[("timer", EpochTimer())],
                         class_weight={"down": 1.0, "up": 2.0}).fit(X, y)
    save_model(model, tmp_path / "model.safetensors")
    with safe_open(tmp_path / "model.safetensors", "pt") as file:
        record = json.loads(file.metadata()["s4learn"])
    assert record["parameters_not_saved"] == ["callbacks"]
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.callbacks is None and loaded.class_weight == {"down": 1.0, "up": 2.0}
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_loaded_model_trains_on(classifier, table, tmp_path):
    X, y = table
    save_model(classifier, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors").set_params(warm_start=True)
    before = loaded.net_.module_.encoder.weight.detach().clone()
    loaded.fit(X, y)
    assert loaded.n_epochs_ == 2 * classifier.n_epochs_
    assert not torch.equal(loaded.net_.module_.encoder.weight, before)


def test_cuda_device_parameter_loads_on_cpu(classifier, table, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    X, _ = table
    model = pickle.loads(pickle.dumps(classifier)).set_params(device="cuda")
    save_model(model, tmp_path / "model.safetensors")
    with pytest.warns(UserWarning, match="loaded on the CPU"):
        loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.device == "cpu" and str(loaded.net_.device) == "cpu"
    assert np.array_equal(loaded.predict_proba(X), classifier.predict_proba(X))


def rewrite_record(path, change):
    with safe_open(path, "pt") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
        record = json.loads(file.metadata()["s4learn"])
    change(record)
    save_file(tensors, path, metadata={"s4learn": json.dumps(record)})


def test_newer_format_version_is_refused(classifier, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(classifier, path)
    rewrite_record(path, lambda record: record.update(format_version=FORMAT_VERSION + 1,
                                                      s4learn_version="9.0"))
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1} .by s4learn "
                                         f"9.0.*reads format versions up to {FORMAT_VERSION}"):
        load_model(path)


def test_unknown_parameters_are_named(classifier, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(classifier, path)
    rewrite_record(path, lambda record: record["parameters"].update(window=3))
    with pytest.raises(ValueError, match=r"does not have: \['window'\]"):
        load_model(path)


def test_files_that_are_not_models_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    weights = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(3)}, weights)
    for path in (text, weights):
        with pytest.raises(ValueError, match="is not an s4learn model file"):
            load_model(path)


def test_adapters_must_be_merged_before_saving(classifier, table, tmp_path):
    X, y = table
    tuned = S4Classifier(**TINY, pretrained=classifier, finetune=LoRA(lora_rank=2)).fit(X, y)
    with pytest.raises(ValueError, match=r"call estimator.merge\(\)"):
        save_model(tuned, tmp_path / "model.safetensors")
    save_model(tuned.merge(), tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    assert np.array_equal(loaded.predict_proba(X), tuned.predict_proba(X))


def test_pretrained_reads_the_model_format(classifier, table, tmp_path):
    X, y = table
    path = tmp_path / "model.safetensors"
    save_model(classifier, path)
    network, attributes = load_pretrained(path)
    np.testing.assert_array_equal(attributes["classes_"], classifier.classes_)
    for (name, tensor), (_, original) in zip(network.state_dict().items(),
                                            classifier.net_.module_.state_dict().items()):
        assert torch.equal(tensor, original), name
    from_path = S4Classifier(**{**TINY, "max_epochs": 1}, pretrained=str(path)).fit(X, y)
    from_object = S4Classifier(**{**TINY, "max_epochs": 1}, pretrained=classifier).fit(X, y)
    assert np.array_equal(from_path.predict_proba(X), from_object.predict_proba(X))


# A pickle whose loading runs code: it creates a marker file, then returns a real model.
def _mark_then_load(marker, model_bytes):
    open(marker, "w").close()
    return pickle.loads(model_bytes)


class _Trap:
    def __init__(self, marker, model):
        self.marker, self.model_bytes = str(marker), pickle.dumps(model)

    def __reduce__(self):
        return _mark_then_load, (self.marker, self.model_bytes)


@pytest.fixture
def trap(classifier, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.joblib"
    joblib.dump(_Trap(marker, classifier), path)
    return path, marker


def test_pickles_are_never_loaded_without_opt_in(trap, table):
    path, marker = trap
    X, y = table
    with pytest.raises(ValueError, match="is not an s4learn model file"):
        load_model(path)
    with pytest.raises(ValueError, match="load it yourself with joblib.load"):
        load_pretrained(path)
    with pytest.raises(ValueError, match="is not an s4learn model file"):
        S4Classifier(**TINY, pretrained=str(path)).fit(X, y)
    assert not marker.exists()


def test_pickles_load_with_opt_in(trap, classifier, table):
    path, marker = trap
    X, _ = table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skorch's notes on unpickling
        loaded = load_model(path, allow_pickle=True)
    assert marker.exists()
    assert np.array_equal(loaded.predict_proba(X), classifier.predict_proba(X))
    marker.unlink()
    network, _ = load_pretrained(path, allow_pickle=True)
    assert marker.exists() and network.d_input == 1


def test_a_flipped_bit_in_the_tensors_is_reported_as_corruption(classifier, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(classifier, path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # a bit of the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.safetensors' is corrupt: its tensors do not "
                                         r"match the checksum"):
        load_model(path)


def test_a_header_asking_for_a_huge_network_is_refused_before_allocating(classifier,
                                                                         tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(classifier, path)

    def huge(record):
        record["network"]["dict"]["d_model"] = 10**9  # a network of terabytes

    rewrite_record(path, huge)
    with pytest.raises(ValueError, match="is corrupt: the network in its header does not "
                                         "match the tensors the file holds"):
        load_model(path)


@pytest.mark.parametrize("name", ["predict", "classes", "__class__"])
def test_attributes_outside_the_fitted_ones_are_refused(classifier, tmp_path, name):
    path = tmp_path / "model.safetensors"
    save_model(classifier, path)
    rewrite_record(path, lambda record: record["attributes"].update({name: 1}))
    with pytest.raises(ValueError, match=rf"sets attributes that no fitted s4learn estimator "
                                         rf"has: \['{name}'\]"):
        load_model(path)


def test_every_fitted_attribute_may_be_saved(classifier, tmp_path):
    regressor = S4Regressor(**TINY).fit(np.random.RandomState(0).randn(30, 6),
                                        np.arange(30.0))
    for model in (classifier, regressor):
        assert set(estimator_attributes(model)) <= FITTED_ATTRIBUTES


def test_loading_a_pickle_with_the_opt_in_warns(trap):
    path, _ = trap
    with pytest.warns(UserWarning, match="as a pickle .allow_pickle=True.: a pickle runs the "
                                         "code it names"):
        load_model(path, allow_pickle=True)
