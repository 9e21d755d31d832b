"""EpochCheckpoint and resuming an interrupted fit."""

import os
import pickle
import re

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from s4learn import S4Classifier
from s4learn.checkpoints import (
    EpochCheckpoint,
    atomic_save,
    load_checkpoint,
    remove_stale_temporaries,
)


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
    return S4Classifier(d_model=8, n_layers=1, d_state=8, max_epochs=4,
                        batch_size=16, random_state=0, callbacks=callbacks)


def test_resumed_fit_equals_uninterrupted_fit(tmp_path):
    X, y = make_data()
    validation = (X[:20], y[:20])
    full = make_classifier(None).fit(X, y, validation_data=validation)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    interrupted = make_classifier([("checkpoint", EpochCheckpoint(last, best)),
                                   ("stop", StopAtEpoch(3))])
    with pytest.raises(Interrupt):
        interrupted.fit(X, y, validation_data=validation)
    state = load_checkpoint(last)
    assert state["epoch"] == 2
    # resumed with the same parameters, the checkpoint callback included
    resumed = make_classifier([("checkpoint", EpochCheckpoint(last, best))]).resume_fit(
        X, y, state, validation_data=validation)
    assert resumed.n_epochs_ == full.n_epochs_ == 4
    np.testing.assert_allclose(resumed.net_.history[:, "lr"], full.net_.history[:, "lr"])
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-5)
    best_epoch = int(np.argmin(full.net_.history[:, "valid_loss"])) + 1
    assert load_checkpoint(best)["epoch"] == best_epoch


def test_resumed_fit_stops_early_where_the_uninterrupted_fit_stops(tmp_path):
    X, y = make_data()
    validation = (X[:20], 1 - y[:20])  # inverted labels: the first epoch stays the best
    settings = dict(patience=2, max_epochs=8, lr=0.05)
    full = make_classifier(None).set_params(**settings).fit(X, y, validation_data=validation)
    assert full.n_epochs_ == 3  # epoch 1 best, then two epochs without improvement
    last = tmp_path / "last.pt"
    interrupted = make_classifier([("checkpoint", EpochCheckpoint(last)),
                                   ("stop", StopAtEpoch(3))]).set_params(**settings)
    with pytest.raises(Interrupt):
        interrupted.fit(X, y, validation_data=validation)
    state = load_checkpoint(last)
    assert state["epoch"] == 2  # epoch 2 did not improve on epoch 1
    resumed = make_classifier(None).set_params(**settings).resume_fit(
        X, y, state, validation_data=validation)
    assert resumed.n_epochs_ == 3
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-5)
    assert dict(resumed.net_.callbacks_)["early_stopping"].best_model_weights_ is None
    # a later fit of the same estimator counts afresh
    resumed.set_params(warm_start=True).fit(X, y, validation_data=validation)
    assert resumed.n_epochs_ == 6


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "value.pt"
    atomic_save({"a": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_save(Unpicklable(), path)
    assert torch.load(path, weights_only=True) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["value.pt"]


def test_saved_files_are_readable_by_others_and_stale_temporaries_go(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_save({"a": 1}, tmp_path / "value.pt")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "value.pt").stat().st_mode & 0o777 == 0o644
    stale = tmp_path / ".value.pt.1a2b3c4d.tmp"  # left by a writer killed mid-write
    stale.write_bytes(b"half")
    remove_stale_temporaries(tmp_path / "value.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["value.pt"]


class _Trap:
    """A pickle whose loading creates ``marker``: what a crafted checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close() or {{'net': {{}}}}",))


@pytest.mark.parametrize("content, message", [
    ("trap", "a file holding other Python objects (a pickle) is never loaded"),
    (b"garbage", "damaged or not an s4learn checkpoint"),
    ({"epoch": 1}, "is not an s4learn checkpoint (a dict with its format"),
])
def test_files_that_are_not_checkpoints_are_refused(tmp_path, content, message):
    path, marker = tmp_path / "last.pt", tmp_path / "marker"
    if content == "trap":
        path.write_bytes(pickle.dumps(_Trap(marker)))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_checkpoint_of_another_architecture_is_an_error(tmp_path):
    X, y = make_data()
    last = tmp_path / "last.pt"
    make_classifier([("checkpoint", EpochCheckpoint(last))]).set_params(max_epochs=1).fit(X, y)
    wider = make_classifier(None).set_params(d_model=16)
    with pytest.raises(ValueError, match="the checkpoint does not fit this estimator"):
        wider.resume_fit(X, y, load_checkpoint(last))
