"""EpochCheckpoint and resuming an interrupted fit."""

import numpy as np
import pytest
from skorch.callbacks import Callback

from s4learn import S4Classifier
from s4learn.checkpoints import EpochCheckpoint, atomic_dump, load_checkpoint


class Interrupt(Exception):
    pass


class StopAtEpoch(Callback):
    """Raise at the start of epoch ``epoch``, as if the process were killed then."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise Interrupt


def make_data():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 6)
    return X, (X[:, :3].sum(axis=1) > 0).astype(int)


def make_classifier(callbacks):
    return S4Classifier(d_model=8, n_layers=1, d_state=8, min_steps=0, max_epochs=4,
                        batch_size=16, random_state=0, callbacks=callbacks)


def test_resumed_fit_equals_uninterrupted_fit(tmp_path):
    X, y = make_data()
    validation = (X[:20], y[:20])
    full = make_classifier(None).fit(X, y, validation_data=validation)
    last, best = tmp_path / "last.joblib", tmp_path / "best.joblib"
    interrupted = make_classifier([("checkpoint", EpochCheckpoint(last, best)),
                                   ("stop", StopAtEpoch(3))])
    with pytest.raises(Interrupt):
        interrupted.fit(X, y, validation_data=validation)
    state = load_checkpoint(last)
    assert state["epoch"] == 2
    dict(state["net"].callbacks_)["stop"].epoch = None
    resumed = make_classifier(None).resume_fit(X, y, state, validation_data=validation)
    assert resumed.n_epochs_ == full.n_epochs_ == 4
    np.testing.assert_allclose(resumed.net_.history[:, "lr"], full.net_.history[:, "lr"])
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-5)
    best_epoch = int(np.argmin(full.net_.history[:, "valid_loss"])) + 1
    assert load_checkpoint(best)["epoch"] == best_epoch


def test_resumed_fit_stops_early_where_the_uninterrupted_fit_stops(tmp_path):
    X, y = make_data()
    validation = (X[:20], 1 - y[:20])  # inverted labels: the first epoch stays the best
    settings = dict(patience=2, min_steps=0, max_epochs=8, lr=0.05)
    full = make_classifier(None).set_params(**settings).fit(X, y, validation_data=validation)
    assert full.n_epochs_ == 3  # epoch 1 best, then two epochs without improvement
    last = tmp_path / "last.joblib"
    interrupted = make_classifier([("checkpoint", EpochCheckpoint(last)),
                                   ("stop", StopAtEpoch(3))]).set_params(**settings)
    with pytest.raises(Interrupt):
        interrupted.fit(X, y, validation_data=validation)
    state = load_checkpoint(last)
    assert state["epoch"] == 2  # epoch 2 did not improve on epoch 1
    dict(state["net"].callbacks_)["stop"].epoch = None
    resumed = make_classifier(None).set_params(**settings).resume_fit(
        X, y, state, validation_data=validation)
    assert resumed.n_epochs_ == 3
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-5)
    assert dict(resumed.net_.callbacks_)["early_stopping"].best_model_weights_ is None
    # a later fit of the same estimator counts afresh
    resumed.set_params(warm_start=True).fit(X, y, validation_data=validation)
    assert resumed.n_epochs_ == 6


def test_atomic_dump_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "value.joblib"
    atomic_dump({"a": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_dump(Unpicklable(), path)
    assert load_checkpoint(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["value.joblib"]
