"""Bad input to the estimators: parameters, values out of float32, divergence, pixels."""

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline

from s4learn import S4Classifier, S4Regressor, load_model, save_model, training
from s4learn import parameters as parameter_table
from s4learn.parameters import PARAMETERS, InvalidParameterError, estimator_parameters
from s4learn.preprocessing import SequenceWindows

TINY = dict(d_model=8, n_layers=1, d_state=8, max_epochs=2, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 12)
    return X, (X[:, 0] > 0).astype(int)


@pytest.fixture(scope="module")
def classifier(data):
    return S4Classifier(**TINY).fit(*data)


def test_the_parameter_table_is_the_signature_and_the_docstring():
    for estimator_class in (S4Classifier, S4Regressor):
        names = estimator_parameters(estimator_class is S4Classifier)
        signature = [name for name, parameter in
                     inspect.signature(estimator_class).parameters.items()
                     if parameter.kind is parameter.KEYWORD_ONLY]
        assert signature == names
        defaults = estimator_class().get_params()
        for name in names:
            assert f"default={defaults[name]!r}".replace("'", '"') in \
                PARAMETERS[name].kind.replace("'", '"'), name
            assert f"\n    {name} : {PARAMETERS[name].kind}\n" in estimator_class.__doc__


def test_the_table_accepts_what_the_network_accepts():
    from s4learn.nn.kernel import INITS

    assert parameter_table.INITS == INITS
    assert set(parameter_table.PRECISIONS) == set(training.PRECISIONS)


@pytest.mark.parametrize("parameters, message", [
    ({"lr": "a"}, "lr must be a positive float, got 'a'"),
    ({"lr": float("nan")}, "lr must be a positive float, got nan"),
    ({"bidirectional": "no"}, "bidirectional must be a bool, got 'no'"),
    ({"d_state": 7}, "d_state must be an even int >= 2 (N/2 complex modes), got 7"),
    ({"d_model": 8.0}, "d_model must be a positive int, got 8.0"),
    ({"dropout": 1.5}, "dropout must be a float in [0, 1), got 1.5"),
    ({"batch_size": 0}, "batch_size must be a positive int or 'auto', got 0"),
    ({"predict_batch_size": 0}, "predict_batch_size must be a positive int or 'auto', got 0"),
    ({"patience": 0}, "patience must be a positive int or None, got 0"),
    ({"init": "legS"}, "init must be one of ('lin', 'inv', 'legs'), got 'legS'"),
    ({"weight_decay": -0.1}, "weight_decay must be a float >= 0, got -0.1"),
    ({"num_workers": -1}, "num_workers must be an int >= 0, got -1"),
    ({"class_weight": "even"}, "class_weight must be None, 'balanced' or a dict, got 'even'"),
    ({"device": "gpu"}, "device must be 'auto' or a torch device such as 'cpu' or 'cuda:0', "
                        "got 'gpu'"),
    ({"device": "cuda:7"}, "device 'cuda:7' is not available"),
])
@pytest.mark.filterwarnings("ignore:num_workers is deprecated:FutureWarning")
def test_bad_parameters_are_named(data, parameters, message):
    with pytest.raises(InvalidParameterError) as error:
        S4Classifier(**{**TINY, **parameters}).fit(*data)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError) and isinstance(error.value, TypeError)


def test_values_beyond_float32_are_refused_at_fit(data):
    X, y = data
    X = X.copy()
    X[3, 4] = 1e300
    with pytest.raises(ValueError, match=r"X has values too large for float32.*up to 1e\+300"):
        S4Classifier(**TINY).fit(X, y)


def test_predict_far_outside_the_training_range_is_an_error(classifier, data):
    X, _ = data
    with pytest.raises(ValueError, match="the network's outputs are not finite for 60 of "
                                         "60 samples.*scaled values up to 3.04e\\+38"):
        classifier.predict(X * 1e38)
    with pytest.raises(ValueError, match="X has values too large for float32"):
        classifier.predict(X * 1e300)


def test_divergence_stops_the_fit_naming_lr(data):
    X, _ = data
    with pytest.raises(ValueError, match=r"training diverged: the training loss became "
                                         r"(nan|inf) in epoch 1; lower the learning rate lr "
                                         r"\(now 1e\+30\)"):
        S4Regressor(**{**TINY, "lr": 1e30}).fit(X, X[:, 0])


def test_targets_that_overflow_their_scaling_are_an_error(data):
    X, _ = data
    with pytest.raises(ValueError, match="y is too large to standardise"):
        S4Regressor(**TINY).fit(X, X[:, 0] * 1e300)


def test_uint8_images_agree_with_the_same_pixels_as_floats():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(40, 6, 6, 1)).astype(np.uint8)
    y = (images.reshape(40, -1).mean(axis=1) > 127).astype(int)
    clf = S4Classifier(**TINY).fit(images, y)
    assert clf.pixel_scale_ == 255.0
    expected = clf.predict_proba(images)
    for pixels in (images.astype(np.float32), images.astype(np.float64)):
        np.testing.assert_array_equal(clf.predict_proba(pixels), expected)
    # a model fitted on float images reads them as they are
    assert S4Classifier(**TINY).fit(images / 255.0, y).pixel_scale_ == 1.0


@pytest.mark.parametrize("make_input", [np.asarray, pd.DataFrame, list])
def test_prediction_in_batches_equals_prediction_at_once(classifier, data, make_input):
    X, _ = data
    X = make_input(np.repeat(X, 3, axis=0))
    at_once = classifier.set_params(predict_batch_size=1000).predict_proba(X)
    batched = classifier.set_params(predict_batch_size=7).predict_proba(X)
    if str(classifier.net_.device) == "cpu":
        np.testing.assert_array_equal(batched, at_once)
    else:  # float32 rounding: on CUDA the kernels chosen depend on the batch size
        np.testing.assert_allclose(batched, at_once, rtol=0, atol=1e-6)


def test_batch_errors_name_the_samples(classifier, data):
    X, _ = data
    X = np.repeat(X, 3, axis=0)
    X[100, 2] = np.nan
    with pytest.raises(ValueError, match="samples 98 to 111 of X: X has 1 missing value"):
        classifier.set_params(predict_batch_size=14).predict(X)


def test_windows_pipeline_round_trips_through_the_model_format(tmp_path):
    rng = np.random.RandomState(0)
    table = rng.randn(80, 2)
    target = np.convolve(table[:, 0], np.ones(3), mode="same")
    model = make_pipeline(SequenceWindows(4), S4Regressor(**TINY)).fit(table, target)
    save_model(model, tmp_path / "windows.safetensors")
    loaded = load_model(tmp_path / "windows.safetensors")
    assert loaded[0].get_params() == model[0].get_params()
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))


def test_parameters_of_0_1_warn_at_the_caller_and_unknown_ones_are_refused():
    for estimator_class in (S4Classifier, S4Regressor):
        with pytest.warns(FutureWarning, match="sequence_layout was renamed layout") as caught:
            model = estimator_class(sequence_layout="NCL")
        assert caught[0].filename == __file__
        assert model.get_params()["layout"] == "NCL"
        assert "sequence_layout" not in model.get_params()
    with pytest.raises(TypeError, match=r"^S4Regressor.__init__\(\) got an unexpected keyword "
                                        r"argument 'foo'$"):
        S4Regressor(foo=1)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_fit_with_the_names_of_0_1_equals_one_with_the_new_names():
    X = np.random.RandomState(0).randn(40, 2, 16)  # (n, channels, length)
    y = (X[:, 0].mean(axis=1) > 0).astype(int)
    settings = dict(TINY, d_model=4)
    old = S4Classifier(**settings, sequence_layout="NCL", differences=True, min_steps=0)
    new = S4Classifier(**settings, layout="NCL", difference_channels="linear")
    np.testing.assert_array_equal(old.fit(X, y).predict_proba(X),
                                  new.fit(X, y).predict_proba(X))


def test_values_near_the_float32_limit_are_standardised_without_overflow():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 12).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    settings = dict(TINY, max_epochs=4)
    plain = S4Classifier(**settings).fit(X, y)
    huge = S4Classifier(**settings).fit(X * np.float32(1e20), y)  # squares overflow float32
    assert np.isfinite(huge.input_scale_).all() and huge.input_scale_[0] > 1e19
    np.testing.assert_array_equal(huge.predict(X * np.float32(1e20)), plain.predict(X))
    one_column, thousandfold = X.copy(), X.copy()
    one_column[:, 3] *= np.float32(1e20)
    thousandfold[:, 3] *= 1000
    first = S4Classifier(**settings).fit(one_column, y).predict(one_column)
    second = S4Classifier(**settings).fit(thousandfold, y).predict(thousandfold)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("weights, label", [({0: -1.0, 1: 2.0}, "-1.0 for class 0"),
                                            ({0: 1.0, 1: float("nan")}, "nan for class 1"),
                                            ({0: "a", 1: 1.0}, "'a' for class 0")])
def test_class_weights_that_are_negative_or_not_finite_are_refused(data, weights, label):
    with pytest.raises(ValueError, match=f"class_weight must give each class a finite "
                                         f"weight >= 0; got {label}"):
        S4Classifier(**TINY, class_weight=weights).fit(*data)


def test_huge_sample_weights_train_as_equal_weights(data):
    X, y = data
    equal = S4Classifier(**TINY).fit(X, y)
    huge = S4Classifier(**TINY).fit(X, y, sample_weight=np.full(len(y), 1e308))
    np.testing.assert_array_equal(huge.predict_proba(X), equal.predict_proba(X))


def test_a_table_model_refuses_rows_of_other_sizes(classifier):
    rng = np.random.RandomState(0)
    with pytest.raises(ValueError, match=r"X has rows of \[10, 14\] values, but S4Classifier "
                                         r"was fitted on a table of 12 columns"):
        classifier.predict([rng.randn(10), rng.randn(14)])


def test_a_sequence_model_predicts_sequences_of_any_length():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 30, 1)
    model = S4Classifier(**TINY).fit(X, (X[:, :, 0].mean(axis=1) > 0).astype(int))
    longer = rng.randn(5, 50, 1)
    np.testing.assert_array_equal(model.predict_proba(longer),
                                  model.predict_proba(list(longer)))
    for x, row in zip(longer, model.predict_proba(longer)):  # one by one: the same
        np.testing.assert_allclose(model.predict_proba(x[None, :20])[0],
                                   model.predict_proba(list(x[None, :20]))[0])
        np.testing.assert_allclose(model.predict_proba(x[None])[0], row, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"X has samples of shape \(50, 2\), but S4Classifier "
                                         r"was fitted on samples of shape \(30, 1\)"):
        model.predict(rng.randn(5, 50, 2))


@pytest.fixture(scope="module")
def image_models():
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, size=(40, 6, 6, 1)).astype(np.uint8)
    y = (pixels[:, :3].mean(axis=(1, 2, 3)) > 127).astype(int)
    on_uint8 = S4Classifier(**TINY).fit(pixels, y)
    on_unit_range = S4Classifier(**TINY).fit(pixels / np.float32(255), y)
    return pixels, on_uint8, on_unit_range


def test_images_on_another_pixel_scale_than_in_fit_are_refused(image_models):
    pixels, on_uint8, on_unit_range = image_models
    assert on_uint8.pixel_range_ == (0.0, 255.0)
    np.testing.assert_array_equal(on_uint8.predict_proba(pixels.astype(np.float64)),
                                  on_uint8.predict_proba(pixels))  # floats 0..255: fine
    with pytest.raises(ValueError, match="looks divided by 255 already"):
        on_uint8.predict(pixels / np.float32(255))
    with pytest.raises(ValueError, match="divide X by 255 as the training images were"):
        on_unit_range.predict(pixels)
    with pytest.raises(ValueError, match="X holds negative pixels"):
        on_uint8.predict(pixels.astype(np.float32) - 128)


def test_unclear_errors_name_the_problem(data, classifier, tmp_path):
    X, y = data
    with pytest.raises(TypeError, match=r"callbacks must hold skorch callbacks or \(name, "
                                        r"callback\) pairs; got 42"):
        S4Classifier(**TINY, callbacks=[42]).fit(X, y)
    with pytest.raises(TypeError, match="accelerator must be an accelerate.Accelerator or "
                                        "None, got int"):
        S4Classifier(**TINY, accelerator=42).fit(X, y)
    with pytest.raises(ValueError, match=r"validation_data must be a pair \(X_val, y_val\); "
                                         r"got tuple"):
        S4Classifier(**TINY).fit(X, y, validation_data=(X,))
    with pytest.raises(TypeError, match="checkpoint must be a checkpoint dict .* got str "
                                        r"\(a path\? read it with load_checkpoint\)"):
        S4Classifier(**TINY).resume_fit(X, y, "last.pt")
    with pytest.raises(ValueError, match="is a folder: save_model writes one file"):
        save_model(classifier, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temporary file left beside it
    with pytest.raises(ValueError, match="is not a file: load_model reads a model file"):
        load_model(tmp_path)
    save_model(classifier, tmp_path / "model.safetensors")
    with pytest.raises(InvalidParameterError, match="device must be 'auto' or a torch device"):
        load_model(tmp_path / "model.safetensors", device="foo")


def test_a_model_with_missing_indicators_is_refused_by_the_stream():
    from s4learn.streaming import StreamingPredictor

    X = np.random.RandomState(0).randn(30, 10, 1)
    X[0, 3] = np.nan
    model = S4Classifier(**TINY, missing="mask").fit(X, np.arange(30) % 2)
    with pytest.raises(ValueError, match="a model fitted with missing='mask' cannot predict "
                                         "from a stream"):
        StreamingPredictor(model)


def test_auto_prediction_batches_keep_activations_within_the_budget():
    rng = np.random.RandomState(0)
    X = rng.randn(16, 32, 1).astype(np.float32)
    clf = S4Classifier(**TINY).fit(X, np.arange(16) % 2)
    assert clf.predict_batch_size == "auto"
    batches = []
    clf.net_.module_.register_forward_pre_hook(lambda module, args: batches.append(
        len(args[0])))
    long = rng.randn(3, 2**20, 1).astype(np.float32)  # 512 MiB of activations each
    auto = clf.predict_proba(long)
    assert batches == [2, 1]
    one_by_one = clf.set_params(predict_batch_size=1).predict_proba(long)
    # FFTs of 2**21 points round differently when batched: equal to float32 precision
    np.testing.assert_allclose(auto, one_by_one, rtol=0, atol=1e-6)
    clf.set_params(predict_batch_size="auto").predict_proba(X)
    assert batches[-1] == 16  # short sequences: one batch


def test_a_network_larger_than_memory_is_refused_before_it_is_built(data):
    X, y = data
    with pytest.raises(ValueError, match=r"d_model=10000000, n_layers=2, d_state=64 make "
                       r"a network of at least 4e\+14 parameters: training it takes at "
                       r"least .* GiB .*choose a smaller d_model"):
        S4Classifier(d_model=10**7, max_epochs=1).fit(X, y)
