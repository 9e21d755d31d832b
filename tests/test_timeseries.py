"""Time-series data as aeon and sktime hold it: layouts, unequal lengths, missing values."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_wine
from sklearn.ensemble import VotingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from s4learn import S4Classifier, estimators, load_model, save_model

TINY = dict(d_model=16, n_layers=1, d_state=8, max_epochs=4, random_state=0)


def unequal_sequences(n=90, channels=2, seed=0):
    """Sequences of 5 to 39 steps; the class shifts the level of every channel."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 2
    X = [rng.randn(rng.randint(5, 40), channels) + 0.8 * label for label in y]
    return X, y


def nan_padded(X):
    padded = np.full((len(X), max(map(len, X)), X[0].shape[1]), np.nan)
    for row, x in zip(padded, X):
        row[:len(x)] = x
    return padded


@pytest.fixture(scope="module")
def unequal_model():
    X, y = unequal_sequences()
    return S4Classifier(**TINY).fit(X, y), X, y


def test_channels_first_arrays_read_as_aeon_does():
    rng = np.random.RandomState(0)
    X_ncl = rng.randn(30, 1, 40).astype(np.float32)  # (n, channels, length), aeon's layout
    y = np.arange(30) % 2
    ncl = S4Classifier(layout="NCL", **TINY).fit(X_ncl, y)
    nlc = S4Classifier(**TINY).fit(X_ncl.transpose(0, 2, 1), y)
    assert (ncl.n_channels_in_, ncl.n_timepoints_) == (1, 40)
    np.testing.assert_array_equal(ncl.predict_proba(X_ncl),
                                  nlc.predict_proba(X_ncl.transpose(0, 2, 1)))


def test_an_ambiguous_3d_array_is_not_guessed():
    X = np.zeros((10, 1, 427))
    with pytest.raises(ValueError, match=r"1 steps of 427 channels.*layout='NCL'"):
        S4Classifier(**TINY).fit(X, np.arange(10) % 2)
    samples = [np.zeros((3, 5)), np.zeros((3, 5))]  # equal shapes: read as a 3-D array
    with pytest.raises(ValueError, match="layout='NCL'"):
        S4Classifier(**TINY).fit(samples, [0, 1])


def test_unequal_lengths_predict_alone_as_in_a_batch(unequal_model):
    clf, X, y = unequal_model
    assert clf.n_timepoints_ == max(map(len, X)) and not hasattr(clf, "n_features_in_")
    in_batch = clf.predict_proba(X)
    alone = np.vstack([clf.predict_proba([x]) for x in X[:10]])
    np.testing.assert_allclose(alone, in_batch[:10], atol=1e-5)
    assert clf.score(X, y) > 0.85


def test_list_layouts_and_nan_padding_are_the_same_data(unequal_model):
    clf, X, y = unequal_model
    expected = clf.predict_proba(X)
    channels_first = [x.T for x in X]  # aeon's list of (n_channels, n_timepoints_i)
    np.testing.assert_allclose(clf.predict_proba(channels_first), expected, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(nan_padded(X)), expected, atol=1e-6)
    refit = S4Classifier(**TINY).fit(nan_padded(X), y)
    np.testing.assert_allclose(refit.predict_proba(X), expected, atol=1e-6)


def test_sequences_longer_than_any_in_fit_are_predicted(unequal_model):
    clf, X, _ = unequal_model
    long = np.vstack([X[0]] * 20)  # 20 times the first sequence
    proba = clf.predict_proba([long, X[1]])
    np.testing.assert_allclose(proba[1], clf.predict_proba([X[1]])[0], atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="1 channel.*fitted on 2"):
        clf.predict([x[:, :1] for x in X])


def test_missing_values_error_names_the_count_and_the_option():
    X = np.random.RandomState(0).randn(20, 30, 2)
    X[0, 3, 1] = X[5, 10, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 missing value\(s\) \(NaN\) of 1200.*"
                                         r"missing='mask'"):
        S4Classifier(**TINY).fit(X, np.arange(20) % 2)


def test_masked_missing_values_keep_accuracy():
    X, y = unequal_sequences(n=120)
    rng = np.random.RandomState(1)
    gappy = [np.where(rng.rand(*x.shape) < 0.3, np.nan, x) for x in X]
    clf = S4Classifier(missing="mask", **TINY).fit(gappy[:90], y[:90])
    assert clf.net_.module_.d_input == 4  # 2 channels + 2 indicators
    assert clf.score(gappy[90:], y[90:]) > 0.8


def test_real_unequal_length_data_from_aeon():
    load_classification = pytest.importorskip("aeon.datasets").load_classification
    X, y = load_classification("JapaneseVowels", split="train")
    X_test, y_test = load_classification("JapaneseVowels", split="test")
    assert isinstance(X, list) and X[0].shape[0] == 12  # (n_channels, n_timepoints_i)
    clf = S4Classifier(d_model=32, n_layers=2, d_state=16, max_epochs=8,
                       random_state=0).fit(X, y)
    assert clf.n_channels_in_ == 12
    assert clf.score(X_test, y_test) > 0.9


@pytest.mark.filterwarnings("ignore:pool is deprecated:FutureWarning")
def test_column_scaling_matches_a_scaled_pipeline_on_wine():
    X, y = load_wine(return_X_y=True)  # proline is about 1000x the smallest column
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    settings = dict(TINY, max_epochs=15, pool="mean")  # the scaling alone makes the gap
    default = S4Classifier(**settings).fit(X_train, y_train)
    assert default.scaling_ == "column"
    pipeline = make_pipeline(StandardScaler(), S4Classifier(scaling="none", **settings))
    pipeline.fit(X_train, y_train)
    one_scale = S4Classifier(scaling="channel", **settings).fit(X_train, y_train)
    assert default.score(X_test, y_test) >= pipeline.score(X_test, y_test) - 0.03
    assert default.score(X_test, y_test) > one_scale.score(X_test, y_test) + 0.1


def test_auto_pool_reads_a_table_of_unlike_columns_to_its_last_column(unequal_model):
    X, y = load_wine(return_X_y=True)
    table = S4Classifier(**dict(TINY, max_epochs=1)).fit(X, y)
    like_columns = S4Classifier(**dict(TINY, max_epochs=1)).fit(X / X.std(axis=0), y)
    assert (table.pool_, table.net_.module_.pool) == ("last", "last")
    assert (like_columns.pool_, like_columns.net_.module_.pool) == ("stats", "stats")
    assert unequal_model[0].pool_ == "stats"  # series
    with pytest.warns(FutureWarning, match="pool is deprecated"):
        chosen = S4Classifier(**dict(TINY, max_epochs=1, pool="mean")).fit(X, y)
    assert chosen.pool_ == "mean"  # honoured until 0.3
    # differences of neighbouring columns (and their log view) only where the columns
    # are alike
    assert (table.difference_channels_, table.net_.module_.differences) == ("none", False)
    assert table.net_.module_.encoder.in_features == 1
    assert like_columns.difference_channels_ == "log"
    assert like_columns.net_.module_.differences and like_columns.net_.module_.log_differences
    assert like_columns.net_.module_.encoder.in_features == 3
    assert unequal_model[0].difference_channels_ == "log"
    linear = S4Classifier(**dict(TINY, max_epochs=1, difference_channels="linear")).fit(X, y)
    assert linear.difference_channels_ == "linear" and not linear.net_.module_.log_differences
    with pytest.warns(FutureWarning, match="differences was renamed difference_channels"):
        renamed = S4Classifier(**dict(TINY, max_epochs=1), differences=True)
    assert renamed.get_params()["difference_channels"] == "linear"


def switching_series(n, seed):
    """Series that switch on and off at random; the class is only the size of the
    noise at rest (standard deviation 0.002 or 0.01 against steps of 1)."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 2
    on = np.cumsum(rng.rand(n, 64) < 0.1, axis=1) % 2
    noise = rng.randn(n, 64) * np.where(y == 0, 0.002, 0.01)[:, None]
    return (on + noise)[..., None], y


def test_log_differences_tell_small_steps_apart(tmp_path):
    X_train, y_train = switching_series(200, seed=0)
    X_test, y_test = switching_series(200, seed=1)
    settings = dict(TINY, d_model=8, max_epochs=30)
    log = S4Classifier(**settings).fit(X_train, y_train)  # "auto": the log view
    linear = S4Classifier(**settings, difference_channels="linear").fit(X_train, y_train)
    assert log.difference_channels_ == "log" and linear.difference_channels_ == "linear"
    assert log.net_.module_.log_differences and not linear.net_.module_.log_differences
    assert log.net_.module_.encoder.in_features == 3  # the value, its step, the step's log
    assert log.score(X_test, y_test) >= 0.95
    assert linear.score(X_test, y_test) <= 0.7  # the same steps, read linearly
    save_model(log, tmp_path / "log.safetensors")
    loaded = load_model(tmp_path / "log.safetensors")
    assert loaded.difference_channels_ == "log"
    np.testing.assert_array_equal(loaded.predict_proba(X_test), log.predict_proba(X_test))
    tuned = S4Classifier(**dict(TINY, max_epochs=1), pretrained=loaded).fit(X_train, y_train)
    assert tuned.difference_channels_ == "log" and tuned.net_.module_.log_differences


class TrainingBatchSizes(Callback):
    def initialize(self):
        self.sizes = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.sizes.append(len(batch[1]))


def with_batch_sizes(**params):
    return S4Classifier(**params, callbacks=[("sizes", TrainingBatchSizes())])


def training_batch_sizes(clf):
    return dict(clf.net_.callbacks_)["sizes"].sizes


def sequences_44(unequal):
    """44 sequences, of 5 to 39 steps or all cut to 5: 5 batches of 8 and 4 left over."""
    X, y = unequal_sequences(n=44)
    return (X if unequal else np.stack([x[:5] for x in X])), y


@pytest.mark.parametrize("unequal", [True, False])
def test_small_data_gets_the_minimum_number_of_steps_in_full_batches(unequal, monkeypatch):
    monkeypatch.setattr(estimators, "AUTO_EPOCHS", 2)
    monkeypatch.setattr(estimators, "AUTO_STEPS", 30)
    X, y = sequences_44(unequal)
    clf = with_batch_sizes(**dict(TINY, max_epochs="auto")).fit(X, y)
    assert clf.net_.batch_size == 8  # "auto": an eighth of 44, at least 8
    assert clf.n_epochs_ == 6  # 5 full batches per epoch: 6 epochs reach 30 steps
    assert training_batch_sizes(clf) == [8] * 30  # 4 sit out each epoch
    exact = with_batch_sizes(**dict(TINY, max_epochs=2)).fit(X, y)
    assert exact.n_epochs_ == 2  # an int: exactly that many epochs


def test_min_steps_of_0_1_is_honoured_with_a_future_warning():
    X, y = sequences_44(unequal=False)
    with pytest.warns(FutureWarning, match="min_steps is deprecated"):
        clf = S4Classifier(**dict(TINY, max_epochs=2, min_steps=30))
    assert "min_steps" not in clf.get_params()
    assert clf.fit(X, y).n_epochs_ == 6
    assert clone(clf).fit(X, y).n_epochs_ == 6  # clone keeps it
    with pytest.warns(UserWarning, match="batch_size=20 gives 2 optimizer step"):
        S4Classifier(**dict(TINY, max_epochs=1, batch_size=20)).fit(X, y)


@pytest.mark.parametrize("unequal", [True, False])
def test_partial_fit_trains_on_every_sample(unequal):
    X, y = sequences_44(unequal)
    clf = with_batch_sizes(**TINY)
    clf.partial_fit(X, y, classes=[0, 1]).partial_fit(X, y)
    assert sorted(training_batch_sizes(clf)) == [4] * 2 + [8] * 10
    clf.fit(X, y)  # fit after partial_fit: full batches again
    assert training_batch_sizes(clf) == [8] * 5 * TINY["max_epochs"]


def test_data_within_one_batch_trains_on_all_samples():
    X, y = sequences_44(unequal=True)
    clf = with_batch_sizes(**dict(TINY, max_epochs=2, batch_size=64))
    with pytest.warns(UserWarning, match="gives 1 optimizer step"):
        clf.fit(X, y)
    assert training_batch_sizes(clf) == [44, 44]


@pytest.mark.parametrize("settings, memory, upper", [
    ({}, 20, 1.0),  # mean-pooled series: local patterns
    ({"dt_max": "auto"}, 20, 100 / 500),
    ({"layout": "unlike-columns"}, 500, 1.0),  # pool "last": it sums up all 500 steps
    ({"layout": "image"}, 500, 1.0),  # 20 x 25 pixels
])
def test_step_sizes_span_the_memory_the_input_needs_to_dt_max(settings, memory, upper):
    rng = np.random.RandomState(0)
    X, y = rng.randn(16, 500, 1), np.arange(16) % 2
    if settings.get("layout") == "image":
        X = X.reshape(16, 20, 25)
    if settings.get("layout") == "unlike-columns":  # a table of unlike columns
        X, settings = X[..., 0] * np.where(np.arange(500) == 0, 1000, 1), {}
    clf = S4Classifier(**dict(TINY, d_model=64, max_epochs=1, **settings)).fit(X, y)
    dt = torch.cat([layer.kernel.log_dt.exp() for layer in clf.net_.module_.layers])
    # 1 / memory for the longest memories (the SSM learning rate barely moves dt in 2 steps)
    assert 0.95 / memory <= dt.min() < 2 / memory and upper / 2 < dt.max() <= upper * 1.05


def test_soft_voting_over_seeds_reads_unequal_lengths():
    # the ensemble recipe of docs/timeseries.md: scikit-learn's VotingClassifier
    X, y = unequal_sequences(n=40)
    members = [(f"seed_{seed}", S4Classifier(**dict(TINY, max_epochs=1, random_state=seed)))
               for seed in range(2)]
    vote = VotingClassifier(members, voting="soft").fit(X, y)
    expected = np.mean([member.predict_proba(X) for member in vote.estimators_], axis=0)
    np.testing.assert_allclose(vote.predict_proba(X), expected, rtol=1e-6)
    assert not np.allclose(*[member.predict_proba(X) for member in vote.estimators_])
