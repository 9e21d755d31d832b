"""Behaviour of S4Classifier and S4Regressor on real and synthetic data."""

import pickle
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s4learn import S4Classifier, S4Regressor

# small and quick; step sizes sized for sequences of tens of steps
TINY = dict(d_model=16, n_layers=1, d_state=16, bidirectional=True, dt_min=0.01, dt_max=1.0,
            max_epochs=8, random_state=0)


@pytest.fixture(scope="module")
def digits_holdout(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def test_digits_accuracy_as_8x8_images(digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    images = (X_train.reshape(-1, 8, 8, 1) * 15).astype(np.uint8)  # 4-D uint8 images
    clf = S4Classifier(d_model=32, n_layers=2, d_state=16, max_epochs=12,
                       bidirectional=True, dt_min=0.01, dt_max=1.0, random_state=0)
    clf.fit(images, y_train)
    test_images = (X_test.reshape(-1, 8, 8, 1) * 15).astype(np.uint8)
    assert clf.score(test_images, y_test) > 0.85
    proba = clf.predict_proba(test_images)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_string_and_noncontiguous_labels(digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    names = np.array(["zero", "one", "two"])
    keep = y_train < 3
    clf = S4Classifier(**TINY).fit(X_train[keep], names[y_train[keep]])
    assert list(clf.classes_) == ["one", "two", "zero"]
    test_keep = y_test < 3
    assert clf.score(X_test[test_keep], names[y_test[test_keep]]) > 0.55  # chance: 0.33
    sparse_labels = np.array([5, 50, 500])[y_train[keep]]
    assert set(S4Classifier(**TINY).fit(X_train[keep], sparse_labels).predict(
        X_test[test_keep])) <= {5, 50, 500}


def test_same_seed_gives_identical_predictions_and_leaves_global_rng_alone(digits_holdout):
    X_train, X_test, y_train, _ = digits_holdout
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = S4Classifier(**TINY).fit(X_train[:300], y_train[:300]).predict_proba(X_test)
    assert torch.rand(1).item() == before.item()
    b = S4Classifier(**TINY).fit(X_train[:300], y_train[:300]).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    c = S4Classifier(**{**TINY, "random_state": 1}).fit(
        X_train[:300], y_train[:300]).predict_proba(X_test)
    assert not np.array_equal(a, c)


def test_regressor_learns_whatever_the_target_scale():
    rng = np.random.RandomState(0)
    X = rng.randn(400, 20, 1)
    y = 1e4 * X[:, -5:, 0].sum(axis=1) + 3e5  # recent steps matter, large scale
    reg = S4Regressor(**{**TINY, "max_epochs": 30}).fit(X[:300], y[:300])
    assert reg.predict(X[300:]).shape == (100,)
    assert reg.score(X[300:], y[300:]) > 0.8
    Y = np.column_stack([y, -y / 1e4])
    multi = S4Regressor(**{**TINY, "max_epochs": 30}).fit(X[:300], Y[:300])
    assert multi.predict(X[300:]).shape == (100, 2)
    assert multi.score(X[300:], Y[300:]) > 0.8


def test_sample_weight_zero_ignores_samples(digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    keep = y_train < 2
    X, y = X_train[keep], y_train[keep]
    flipped = 1 - y
    weight = np.r_[np.ones(len(y)), np.zeros(len(y))]
    clf = S4Classifier(**TINY).fit(np.r_[X, X], np.r_[y, flipped], sample_weight=weight)
    test_keep = y_test < 2
    assert clf.score(X_test[test_keep], y_test[test_keep]) > 0.9


def test_class_weight_shifts_predictions_towards_the_weighted_class():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 10)
    y = np.where(rng.rand(200) < 0.5, "a", "b")  # labels carry no signal
    plain = S4Classifier(**TINY).fit(X, y).predict(X)
    weighted = S4Classifier(**TINY, class_weight={"a": 1.0, "b": 10.0}).fit(X, y).predict(X)
    assert (weighted == "b").mean() > 0.9 > (plain == "b").mean()
    with pytest.raises(ValueError, match="not in y"):
        S4Classifier(**TINY, class_weight={"c": 2.0}).fit(X, y)


@pytest.mark.parametrize("estimator_class", [S4Classifier, S4Regressor])
def test_predictions_do_not_depend_on_the_batch(digits_holdout, estimator_class):
    X_train, X_test, y_train, _ = digits_holdout
    model = estimator_class(**TINY).fit(X_train[:200], y_train[:200])
    method = "predict_proba" if estimator_class is S4Classifier else "predict"
    whole = getattr(model, method)(X_test[:40])
    one_by_one = np.concatenate([getattr(model, method)(X_test[i:i + 1]) for i in range(40)])
    np.testing.assert_allclose(one_by_one, whole, rtol=1e-5, atol=1e-6)  # float32 rounding
    assert not np.array_equal(whole[:20], whole[20:])  # distinct samples, distinct outputs


def test_joblib_and_pickle_round_trips(tmp_path, digits_holdout):
    X_train, X_test, y_train, _ = digits_holdout
    clf = S4Classifier(**TINY).fit(X_train[:200], y_train[:200])
    joblib.dump(clf, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(unpickled.predict_proba(X_test), clf.predict_proba(X_test))


def test_model_saved_for_cuda_loads_on_a_cpu_only_machine(monkeypatch, digits_holdout):
    X_train, X_test, y_train, _ = digits_holdout
    clf = S4Classifier(**TINY, device="cpu").fit(X_train[:200], y_train[:200])
    expected = clf.predict(X_test)
    clf.net_.device = "cuda"  # as saved on a GPU machine
    blob = pickle.dumps(clf)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(match="no CUDA devices are available"):
        loaded = pickle.loads(blob)
    assert str(loaded.net_.device) == "cpu"
    np.testing.assert_array_equal(loaded.predict(X_test), expected)


def test_pipeline_with_column_transformer_on_a_dataframe(digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    columns = [f"pixel_{i}" for i in range(64)]
    frame = pd.DataFrame(X_train, columns=columns)
    scale = ColumnTransformer([("scale", StandardScaler(), columns)])
    pipe = make_pipeline(scale, S4Classifier(**TINY)).fit(frame, y_train)
    assert pipe.score(pd.DataFrame(X_test, columns=columns), y_test) > 0.45  # chance: 0.1


def test_grid_search_and_cross_validation(digits_holdout):
    X_train, _, y_train, _ = digits_holdout
    keep = y_train < 3
    X, y = X_train[keep][:240], y_train[keep][:240]
    search = GridSearchCV(make_pipeline(StandardScaler(), S4Classifier(**TINY)),
                          {"s4classifier__d_model": [8, 16], "s4classifier__lr": [0.01, 0.03]},
                          cv=2, n_jobs=2).fit(X, y)
    best_width = search.best_params_["s4classifier__d_model"]
    assert len(set(search.cv_results_["mean_test_score"])) > 1  # the settings reach the fits
    assert search.best_score_ > 0.55  # chance: 0.33
    assert search.best_estimator_[-1].net_.module_.encoder.out_features == best_width
    scores = cross_val_score(search.best_estimator_, X, y, cv=2)  # clones: same seed
    assert scores.mean() == pytest.approx(search.best_score_)
    assert clone(search.best_estimator_).get_params()["s4classifier__d_model"] == best_width


def test_partial_fit_and_warm_start_continue_training(digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    clf = S4Classifier(**{**TINY, "max_epochs": 2, "warm_start": True})
    clf.fit(X_train, y_train)
    first = clf.score(X_test, y_test)
    module = clf.net_.module_
    clf.fit(X_train, y_train)
    assert clf.net_.module_ is module and clf.n_epochs_ == 4
    assert clf.score(X_test, y_test) > first
    online = S4Classifier(**TINY)
    with pytest.raises(ValueError, match="classes"):
        online.partial_fit(X_train, y_train)
    for _ in range(3):
        online.partial_fit(X_train, y_train, classes=np.arange(10))
    assert online.n_epochs_ == 3
    assert online.score(X_test, y_test) > 0.3  # chance: 0.1


def test_early_stopping_keeps_the_best_epoch(digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    clf = S4Classifier(**{**TINY, "max_epochs": 40, "lr": 0.05, "patience": 2})
    clf.fit(X_train[:300], y_train[:300])
    history = clf.net_.history
    assert clf.n_epochs_ < 40  # stopped early
    best = int(np.argmin(history[:, "valid_loss"]))
    assert clf.n_epochs_ == best + 1 + 2
    assert "valid_acc" in history[-1]


def test_validation_data_and_verbose_epoch_lines(capsys, digits_holdout):
    X_train, X_test, y_train, y_test = digits_holdout
    S4Classifier(**{**TINY, "max_epochs": 2, "verbose": 1}).fit(
        X_train[:200], y_train[:200], validation_data=(X_test, y_test))
    out = capsys.readouterr().out
    assert "valid_loss" in out and "valid_acc" in out and "dur" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("1", "2"))]) == 2
    assert "\x1b[" not in out  # no colour codes when the output is not a terminal
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.stdout, "isatty", lambda: True)
        S4Classifier(**{**TINY, "max_epochs": 1, "verbose": 1}).fit(X_train[:100],
                                                                   y_train[:100])
    assert "\x1b[" in capsys.readouterr().out  # on a terminal, best scores highlighted
    S4Classifier(**{**TINY, "max_epochs": 2}).fit(X_train[:200], y_train[:200])
    assert capsys.readouterr().out == ""


def test_log_probabilities_stay_finite_for_extreme_logits(digits_holdout):
    X_train, X_test, y_train, _ = digits_holdout
    clf = S4Classifier(**{**TINY, "max_epochs": 1}).fit(X_train[:200], y_train[:200])
    with torch.no_grad():
        clf.net_.module_.decoder.weight.mul_(1e4)  # logits tens of thousands apart
    proba, log_proba = clf.predict_proba(X_test[:20]), clf.predict_log_proba(X_test[:20])
    assert (proba == 0).any()  # log(predict_proba) would be -inf there
    assert np.isfinite(log_proba).all()
    representable = proba > 1e-300
    np.testing.assert_allclose(log_proba[representable], np.log(proba[representable]),
                               rtol=1e-9, atol=1e-9)
