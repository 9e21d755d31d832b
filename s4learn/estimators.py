"""scikit-learn estimators around the S4D network: S4Classifier and S4Regressor.

The estimators are the scikit-learn layer only: they validate, then hand plain values
to the parts below them: :mod:`s4learn.inputs` (the input transform),
:mod:`s4learn.networks` (the network to train) and :mod:`s4learn.training` (the skorch
net and the one training routine).
"""

import inspect
import math
import numbers
import warnings
from functools import partial
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from .inputs import InputScaling, check_sequences, values_per_sample
from .networks import DataShape, network_to_train, parameter_counts, predict_batch_size
from .nn.model import members_apart
from .parameters import (
    AUTO_EPOCHS,
    AUTO_STEPS,
    LegacyParameters,
    check_parameters,
    check_value,
    parameter_docs,
)
from .peft import merge_adapters
from .training import (
    MAX_SEED,
    NetSettings,
    TrainingRun,
    build_net,
    check_accelerator,
    held_out_split,
    net_outputs,
    own_torch_rng,
    refit_readout,
    resolve_device,
    run_training,
    standard_callbacks,
    valid_accuracy,
    valid_r2,
)

FEW_STEPS_PER_EPOCH = 4  # fewer with a batch_size of the user's own gives a warning
LOADED_BATCH_SIZE = 64  # the training batch of a net rebuilt from a model file


class TrainingData(NamedTuple):
    """What the net trains on: ``{"x", "sample_weight"[, "lengths"]}`` and targets."""

    inputs: dict
    y: np.ndarray


_COMMON_ATTRIBUTES = """\
    net_ : S4Net
        The trained skorch net; ``net_.history`` holds the per-epoch record and
        ``net_.module_`` the :class:`s4learn.nn.S4Model`.
    n_features_in_ : int
        Number of values per sample seen in ``fit`` (columns of a 2-D input).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit``.
    input_shape_ : tuple
        Shape of one sample as passed to ``fit`` (not set for a list of sequences of
        unequal lengths).
    n_channels_in_ : int
        Channels per step of the sequences seen in ``fit``.
    n_timepoints_ : int
        Steps of the longest training sequence (it sets ``dt_min``/``dt_max`` with
        "auto"; sequences of any length are accepted at predict).
    scaling_ : str
        The input scaling used: ``scaling`` with "auto" resolved.
    pool_ : {"stats", "mean", "last"}
        How the network summarises a sequence: "stats", the mean, maximum, share of
        positive steps and standard deviation of every channel of every block's
        features; or "last", the features of its last step, for a table whose columns
        differ in scale ("mean" and any other are a pretrained network's own when
        fine-tuning).
    difference_channels_ : {"none", "linear", "log"}
        What the network reads besides each channel: ``difference_channels`` with
        "auto" resolved (the pretrained network's own when fine-tuning).
    input_scaling_ : InputScaling
        The fitted input transform (:class:`s4learn.inputs.InputScaling`): what
        ``predict``, streaming and export apply to every input.
    input_mean_, input_scale_ : ndarray
        The input standardisation learnt in ``fit`` (``input_scaling_``'s).
    n_epochs_ : int
        Number of epochs trained so far.
    n_params_ : int
        Parameters of the network (with adapters merged, as :meth:`merge` leaves it).
    n_trainable_params_ : int
        Parameters that ``fit`` trains: all of them, or with ``finetune`` the adapters,
        updates and unfrozen parts.
    loss_curve_ : list of float
        Training loss of each epoch (``net_.history``'s ``train_loss``).
    validation_scores_ : list of float or None
        Validation accuracy (classifier) or R2 (regressor) of each epoch; None when
        ``fit`` had no validation data (neither ``patience`` nor ``validation_data``).
        An epoch trained without validation data, as by ``partial_fit`` after a
        validated ``fit``, has None in the list.
    validation_loss_curve_ : list of float or None
        Validation loss of each epoch, None as for ``validation_scores_``.
    best_loss_ : float
        Lowest validation loss over the epochs (or of the closed-form output layer
        that ``fit`` ends with, where the validation data kept it), or the lowest
        training loss when no epoch had validation data."""




class FittedSummaries:
    """Read-only views of a fitted estimator: its input scaling and training curves.

    The curves are columns of ``net_.history``, as MLPClassifier names them; the scaling
    is ``input_scaling_``'s.
    """

    @property
    def scaling_(self):
        return self.input_scaling_.scaling_

    @property
    def input_mean_(self):
        return self.input_scaling_.mean_

    @property
    def input_scale_(self):
        return self.input_scaling_.scale_

    @property
    def loss_curve_(self):
        return self._history_column("train_loss")

    @property
    def validation_scores_(self):
        return self._history_column(self._valid_score_name, optional=True)

    @property
    def validation_loss_curve_(self):
        return self._history_column("valid_loss", optional=True)

    @property
    def best_loss_(self):
        losses = self.validation_loss_curve_ or self.loss_curve_
        readout = self._history_column("readout_valid_loss", optional=True) or []
        return min(loss for loss in losses + readout if loss is not None)

    def _history_column(self, key, optional=False):
        """One value per epoch of ``net_.history``; with ``optional``, None where an
        epoch lacks ``key``, and None instead of the list when every epoch lacks it."""
        check_is_fitted(self)
        values = [row.get(key) for row in self.net_.history]
        if optional and all(value is None for value in values):
            return None
        return [None if value is None else float(value) for value in values]


class S4Estimator(LegacyParameters, FittedSummaries, BaseEstimator):
    """Shared fit/predict machinery; use :class:`S4Classifier` or :class:`S4Regressor`."""

    def __init__(self, *, d_model=48, n_layers=2, d_state=64, n_members=1, dropout=0.3,
                 bidirectional=False, init="legs", dt_min="auto", dt_max=1.0,
                 difference_channels="auto", lr=0.01, weight_decay=0.01, batch_size="auto",
                 predict_batch_size="auto", max_epochs="auto", patience=None,
                 validation_fraction=0.1, layout="auto", grayscale=False, scaling="auto",
                 missing="error", device="auto", random_state=None, verbose=0,
                 callbacks=None, warm_start=False, pretrained=None, finetune=None,
                 precision="float32", accelerator=None, **deprecated):
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.n_members = n_members
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.init = init
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.difference_channels = difference_channels
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.predict_batch_size = predict_batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.layout = layout
        self.grayscale = grayscale
        self.scaling = scaling
        self.missing = missing
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.pretrained = pretrained
        self.finetune = finetune
        self.precision = precision
        self.accelerator = accelerator
        if deprecated:
            self._accept_deprecated(deprecated, caller_depth=2 + (
                type(self).__init__ is not S4Estimator.__init__))

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None, validation_data=None):
        """Train the network on sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like, DataFrame, tensor or list of arrays
            Sequences ``(n, L)`` / ``(n, L, C)`` / ``(n, C, L)``, a list of sequences of
            unequal lengths, or images; see :mod:`s4learn.inputs`.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the training loss.
        validation_data : tuple (X_val, y_val), default=None
            Data to compute the validation loss and score on after every epoch (and to
            stop early on when ``patience`` is set), instead of a held-out fraction.

        Returns
        -------
        self
        """
        new_net = not (self.warm_start and hasattr(self, "net_"))
        data = self._training_data(X, y, sample_weight, new_net=new_net)
        run = TrainingRun.fit(self._n_epochs(len(data.y)), new_net=new_net)
        return self._train(data, run, validation_data)

    def resume_fit(self, X, y, checkpoint, sample_weight=None, validation_data=None):
        """Finish a ``fit`` that was interrupted, from a checkpoint of it.

        Training goes on until the epochs of the uninterrupted fit are done, with the
        saved optimizer, learning-rate schedule, early-stopping state and random stream,
        so the result is the model that fit would have given.

        Parameters
        ----------
        X, y, sample_weight, validation_data
            As passed to the interrupted ``fit``, on an estimator with the same
            parameters.
        checkpoint : dict
            A checkpoint written by :class:`s4learn.checkpoints.EpochCheckpoint` at the
            end of an epoch of that fit (read it with
            :func:`s4learn.checkpoints.load_checkpoint`), with keys ``"net"`` and
            ``"torch_rng_state"`` (and ``"cuda_rng_state"`` from training on CUDA). The
            net is built as ``fit`` builds it (the same initialisation and, when
            fine-tuning, the same adapters), then given the checkpoint's weights,
            optimizer state, history and callback state.

        Returns
        -------
        self
        """
        if not (isinstance(checkpoint, dict) and "net" in checkpoint):
            raise TypeError(f"checkpoint must be a checkpoint dict as "
                            f"s4learn.checkpoints.load_checkpoint reads it; got "
                            f"{type(checkpoint).__name__} (a path? read it with "
                            f"load_checkpoint)")
        data = self._training_data(X, y, sample_weight, new_net=True)
        run = TrainingRun.resume(self._n_epochs(len(data.y)), checkpoint)
        return self._train(data, run, validation_data)

    def _partial_fit(self, X, y, sample_weight, classes=None):
        new_net = not hasattr(self, "net_")
        data = self._training_data(X, y, sample_weight, new_net=new_net, classes=classes)
        return self._train(data, TrainingRun.partial_fit(new_net=new_net), None)

    def _training_data(self, X, y, sample_weight, *, new_net, classes=None):
        """Validated, scaled inputs as the net reads them, with encoded targets.

        For a new net the input transform is fitted first (``input_scaling_``).
        """
        check_parameters(constructor_arguments(self))
        if self.accelerator is not None:
            check_accelerator(self.accelerator, self.precision)
        X, lengths, y = check_sequences(self, X, y, reset=new_net,
                                        **self._target_check_params())
        y = self._encode_targets(y, reset=new_net, classes=classes)
        weight = normalised_weights(sample_weight, len(X), self._class_weight(y))
        if new_net:
            self.n_timepoints_ = int(X.shape[1])
            self.input_scaling_ = InputScaling(self.scaling, self.missing).fit(
                X, lengths, table=self._is_table())
            self.n_epochs_ = 0
        return TrainingData({**self._net_inputs(X, lengths), "sample_weight": weight}, y)

    def _net_inputs(self, X, lengths):
        """``{"x": scaled X[, "lengths"]}``: the dict of inputs the net reads."""
        inputs = {"x": self.input_scaling_.transform(X, lengths)}
        if lengths is not None:
            inputs["lengths"] = lengths
        return inputs

    def _train(self, data, run, validation_data):
        """Build a new net when the run asks for one, and train it for ``run``."""
        state = None if run.new_net else getattr(self, "torch_rng_state_", None)
        seed = check_random_state(self.random_state).randint(MAX_SEED) if state is None \
            else None
        with own_torch_rng(seed, state, self._train_device(run.new_net)) as rng:
            if run.new_net:
                self.net_ = build_net(self._network(data), self._net_settings(len(data.y)))
            run_training(self.net_, run, data.inputs, data.y,
                         self._train_split(validation_data))
            readout = refit_readout(self.net_, data, classifier=is_classifier(self)) \
                if run.readout else None
            self._set_noise(data, readout)
        self.torch_rng_state_ = rng["state"]
        self.n_epochs_ = len(self.net_.history)
        return self

    def _set_noise(self, data, readout):
        """Set what a trained model's residuals tell (the regressor's ``noise_std_``)."""

    def _n_epochs(self, n_samples):
        """The epochs of ``fit``: ``max_epochs``, or with "auto" AUTO_EPOCHS and enough
        for AUTO_STEPS steps."""
        n_train = n_samples
        if self.patience is not None:
            n_train = int(n_train * (1 - self.validation_fraction))
        steps_per_epoch = max(n_train // self._batch_size(n_samples), 1)  # full batches
        if steps_per_epoch < FEW_STEPS_PER_EPOCH and self.batch_size != "auto":
            warnings.warn(f"batch_size={self.batch_size} gives {steps_per_epoch} optimizer "
                          f"step(s) per epoch on {n_train} training samples; a smaller "
                          f"batch_size (or 'auto') trains better on small data",
                          stacklevel=3)  # the caller of fit / resume_fit
        auto = self.max_epochs == "auto"
        min_steps = self._setting("min_steps", AUTO_STEPS if auto else 0)
        return max(AUTO_EPOCHS if auto else self.max_epochs,
                   math.ceil(min_steps / steps_per_epoch))

    def _batch_size(self, n_samples):
        """``batch_size``, or with "auto" an eighth of the data within [8, 64]."""
        if self.batch_size == "auto":
            return int(min(max(n_samples // 8, 8), 64))
        return self.batch_size

    def _class_weight(self, y):
        return 1.0

    def _is_image(self):
        """Whether ``fit`` got images: ``layout="image"`` (or "NHWC"/"NCHW") or 4-D."""
        return (self.layout in ("image", "NHWC", "NCHW")
                or len(getattr(self, "input_shape_", ())) == 3)

    def _is_table(self):
        """Whether ``fit`` got a table: a DataFrame or 2-D array of values per sample."""
        return len(getattr(self, "input_shape_", ())) == 1 and not self._is_image()

    def _data_shape(self, data):
        return DataShape(n_channels=data.inputs["x"].shape[-1], n_outputs=self._n_outputs(),
                         length=self.n_timepoints_, is_image=self._is_image(),
                         columns_differ=self.input_scaling_.columns_differ_)

    def _network(self, data):
        """The S4Model to train (new, or adapted from ``pretrained``); sets ``pool_``,
        ``difference_channels_`` and the parameter counts."""
        choice = network_to_train(
            self._data_shape(data), self.get_params(deep=False), self._task(),
            pool=self._setting("pool"), norm=self._setting("norm"),
            prenorm=self._setting("prenorm"), warm_up=partial(self._warm_up, data=data))
        self.pool_, self.difference_channels_ = choice.pool, choice.difference_channels
        self.n_params_, self.n_trainable_params_ = parameter_counts(choice.network)
        return choice.network

    def _warm_up(self, run, data):
        """Train ``run.network`` (a :class:`~s4learn.peft.WarmupRun`) on ``data``."""
        if self.verbose:
            print(f"Warmup: {run.epochs} epoch(s) of the SSM parameters at lr={run.lr} to "
                  f"choose the dimensions to tune")
        settings = self._net_settings(len(data.y))
        net = build_net(run.network, NetSettings(**{**vars(settings), "lr": run.lr,
                                                    "callbacks": []}))
        net.partial_fit(data.inputs, data.y, epochs=run.epochs)
        return run.network

    def _net_settings(self, n_samples=None):
        """The skorch net's settings; ``n_samples`` sets the automatic batch size."""
        callbacks = standard_callbacks(self._valid_score, self._valid_score_name,
                                       self.patience, self.verbose, self.callbacks)
        batch_size = LOADED_BATCH_SIZE if n_samples is None else self._batch_size(n_samples)
        return NetSettings(
            criterion=self._criterion, lr=self.lr, weight_decay=self.weight_decay,
            batch_size=batch_size, callbacks=callbacks, verbose=self.verbose,
            device=self.device, precision=self.precision, accelerator=self.accelerator,
            compile=self._setting("compile"), num_workers=self._setting("num_workers"))

    def merge(self):
        """Fold fine-tuning adapters and updates into plain weights, in place.

        Predictions stay the same (up to float rounding) and run at the speed of the
        pretrained architecture. Afterwards every parameter is trainable, so a further
        ``fit`` with ``warm_start=True`` fine-tunes all of them.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        merge_adapters(self.net_.module_)
        self.net_.initialize_optimizer()
        return self

    def _train_split(self, validation_data):
        """skorch's train split: the validation data given, a held-out fraction with
        ``patience``, or None."""
        if validation_data is None:
            return held_out_split(self.patience, self.validation_fraction,
                                  self._stratified_split)
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError(f"validation_data must be a pair (X_val, y_val); got "
                             f"{type(validation_data).__name__} {validation_data!r:.60}")
        X_val, y_val = validation_data
        try:
            X_val, lengths, y_val = check_sequences(self, X_val, y_val, reset=False,
                                                    **self._target_check_params())
            y_val = self._encode_targets(y_val, reset=False)
        except ValueError as error:
            raise ValueError(f"validation_data: {error}") from error
        return predefined_split(Dataset(self._net_inputs(X_val, lengths), y_val))

    def _train_device(self, new_net):
        """The device that training runs on: the accelerator's, ``device``'s or net_'s."""
        if self.accelerator is not None:
            return self.accelerator.device
        return resolve_device(self.device) if new_net else self.net_.device

    @classmethod
    def from_fitted_state(cls, parameters, attributes, network, history):
        """The fitted estimator that ``parameters``, fitted ``attributes`` (its input
        transform as ``input_scaling_``), a trained ``network`` and its ``history``
        describe, as a model file holds them."""
        with warnings.catch_warnings():  # a file of 0.1 names parameters of 0.1
            warnings.simplefilter("ignore", FutureWarning)
            try:
                estimator = cls(**parameters)
            except TypeError as error:  # persistence names them first
                raise ValueError(f"a parameter that this version of s4learn does not "
                                 f"have: {error}") from None
        for name, value in attributes.items():
            setattr(estimator, name, value)
        with torch.random.fork_rng(devices=[]):
            estimator.net_ = build_net(network, estimator._net_settings())
        estimator.net_.history = history
        return estimator

    # --------------------------------------------------------------- prediction
    def _forward(self, X):
        """Network outputs for ``X`` as a float64 array (n_samples, n_outputs).

        ``X`` is validated, scaled and run ``predict_batch_size`` samples at a time, so
        that no float32 or scaled copy of the whole of a large ``X`` is ever made.
        """
        check_is_fitted(self)
        batch_size = check_value("predict_batch_size", self.predict_batch_size)
        if batch_size == "auto":
            values = values_per_sample(X)
            steps = 1 if values is None else -(-values // self.n_channels_in_)
            batch_size = predict_batch_size(self.net_.module_, steps)
        return outputs_in_batches(self._forward_batch, X, batch_size)

    def _forward_batch(self, X):
        """Network outputs for a batch of samples; ValueError where they are not finite."""
        X, lengths = check_sequences(self, X, reset=False)
        return net_outputs(self.net_, self._net_inputs(X, lengths))

    def _member_outputs(self, X):
        """Each ensemble member's outputs for ``X``, (n_samples, n_members, n_outputs)."""
        with members_apart(self.net_.module_):
            return self._forward(X)

    def __sklearn_clone__(self):
        # a fitted pretrained model is data, not a sub-estimator: keep it as it is
        # nor is an accelerator (one per process): both are passed on as they are
        params = self.get_params(deep=False)
        kept = {name: params.pop(name) for name in ("pretrained", "accelerator")}
        params = {name: clone(value, safe=False) for name, value in params.items()}
        return self._with_legacy_settings(type(self)(**params, **kept))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


def constructor_arguments(estimator):
    """The keyword arguments that rebuild ``estimator``: its parameters, and the
    settings of 0.1 it was given (until they are removed)."""
    return {**estimator.get_params(deep=False), **estimator.legacy_settings()}


class S4Classifier(ClassifierMixin, S4Estimator):
    __doc__ = f"""S4 sequence classifier: an S4D network trained by a skorch net.

    Reads each sample as a sequence (a table row is a sequence of its columns, an image
    a sequence of its pixels) and predicts its class.

    Parameters
    ----------
{parameter_docs(classifier=True)}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
{_COMMON_ATTRIBUTES}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from s4learn import S4Classifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = S4Classifier(d_model=16, n_layers=1, max_epochs=5, random_state=0)
    >>> clf.fit(X[:200], y[:200]).predict(X[:3]).shape
    (3,)
    """

    _criterion = torch.nn.CrossEntropyLoss
    _stratified_split = True
    _valid_score = staticmethod(valid_accuracy)
    _valid_score_name = "valid_acc"

    def __init__(self, *, class_weight=None, **parameters):
        # the parameters of S4Estimator, then class_weight (see _signature_with)
        super().__init__(**parameters)
        self.class_weight = class_weight

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one more epoch at the constant learning rate ``lr``, on every sample.

        ``classes`` (every label that will ever be seen) is required on the first call.
        """
        if not hasattr(self, "net_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._partial_fit(X, y, sample_weight, classes)

    def _target_check_params(self):
        return {}

    def _encode_targets(self, y, reset, classes=None):
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; "
                                 f"got one class: {self.classes_[0]!r}")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not in the training targets: "
                             f"{unknown[:5].tolist()} (the classes are "
                             f"{self.classes_[:10].tolist()})")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _class_weight(self, y):
        if self.class_weight is None:
            return 1.0
        if isinstance(self.class_weight, dict):
            class_weight = {self._class_index(label): _class_weight_value(label, weight)
                            for label, weight in self.class_weight.items()}
        else:
            class_weight = self.class_weight
        return compute_sample_weight(class_weight, y)

    def _class_index(self, label):
        index = np.flatnonzero(self.classes_ == label)
        if not index.size:
            raise ValueError(f"class_weight names a label that is not in y: {label!r}")
        return int(index[0])

    def _n_outputs(self):
        return len(self.classes_)

    def _task(self):
        return {"classes": self.classes_}

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes); rows sum to 1."""
        logits = self._forward(X)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, from the logits: finite where a probability
        rounds to 0."""
        return log_softmax(self._forward(X), axis=1)

    def predict(self, X):
        """Most likely class of each sample."""
        best = self._forward(X).argmax(axis=1)
        return self.classes_[best]


class S4Regressor(RegressorMixin, S4Estimator):
    __doc__ = f"""S4 sequence regressor: an S4D network trained by a skorch net.

    Targets are standardised in ``fit`` (and predictions mapped back), so the defaults
    work whatever the scale of ``y``. A 1-D ``y`` gives 1-D predictions; a 2-D ``y``
    trains one network with one output per column.

    Parameters
    ----------
{parameter_docs(classifier=False)}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The target standardisation learnt in ``fit``.
    noise_std_ : ndarray of shape (n_outputs,)
        The typical error of a prediction, in the units of ``y``: the root mean square
        of the training targets' leave-one-out residuals under the closed-form output
        layer that ``fit`` ends with (of the ensemble's mean), or of their residuals
        where the output layer was trained by gradient descent (``partial_fit``, or
        where validation data kept it). Part of ``predict(X, return_std=True)``.
{_COMMON_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from s4learn import S4Regressor
    >>> X = np.random.RandomState(0).randn(100, 20)
    >>> reg = S4Regressor(d_model=16, n_layers=1, max_epochs=5, random_state=0)
    >>> reg.fit(X, X.sum(axis=1)).predict(X[:3]).shape
    (3,)
    """

    _criterion = torch.nn.MSELoss
    _stratified_split = False
    _valid_score = staticmethod(valid_r2)
    _valid_score_name = "valid_r2"

    def partial_fit(self, X, y, sample_weight=None):
        """Train one more epoch at the constant learning rate ``lr``, on every sample."""
        return self._partial_fit(X, y, sample_weight)

    def _set_noise(self, data, readout):
        if readout is None:
            rows = np.arange(len(data.y))
            predictions = net_outputs(self.net_, data.inputs)
        else:
            rows, loo = readout
            predictions = loo.mean(axis=1)
        weights = np.asarray(data.inputs["sample_weight"], dtype=np.float64)[rows]
        residuals = np.asarray(data.y, dtype=np.float64)[rows] - predictions
        used = weights > 0
        mean_square = weights[used] @ residuals[used] ** 2 / weights[used].sum()
        self.noise_std_ = np.sqrt(mean_square) * self.target_scale_

    def _target_check_params(self):
        return {"multi_output": True, "y_numeric": True}

    def _encode_targets(self, y, reset, classes=None):
        y = np.asarray(y, dtype=np.float64)
        if reset:
            self.y_ndim_ = y.ndim
            y2 = y.reshape(len(y), -1)
            self.n_outputs_ = y2.shape[1]
            with np.errstate(over="ignore", invalid="ignore"):
                mean, scale = y2.mean(axis=0), y2.std(axis=0)
            if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
                raise ValueError(f"y is too large to standardise: its mean or standard "
                                 f"deviation overflows float64 (|y| up to "
                                 f"{np.abs(y2).max():.3g}); rescale y")
            self.target_mean_ = mean
            self.target_scale_ = np.where(scale > 0, scale, 1.0)
        y2 = y.reshape(len(y), -1)
        if y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} outputs, but {type(self).__name__} was "
                             f"fitted with {self.n_outputs_}")
        with np.errstate(over="ignore"):
            encoded = ((y2 - self.target_mean_) / self.target_scale_).astype(np.float32)
        if not np.isfinite(encoded).all():
            raise ValueError("y is too far from the training targets to standardise in "
                             "float32; check y's units")
        return encoded

    def _n_outputs(self):
        return self.n_outputs_

    def _task(self):
        return {"n_outputs": self.n_outputs_}

    def predict(self, X, return_std=False):
        """Predicted targets: shape (n_samples,) for a 1-D ``y`` in fit, else 2-D.

        Parameters
        ----------
        X : array-like, DataFrame, tensor or list of arrays
            Sequences, as in ``fit``.
        return_std : bool, default=False
            Also return the predictive standard deviation of each prediction, in the
            units of ``y``: ``sqrt(spread**2 + noise_std_**2)``, where the spread is
            the standard deviation of the ensemble's members (``ddof=1``; 0 for a
            single network) and ``noise_std_`` the typical error of the training
            targets' leave-one-out predictions.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The members' mean prediction.
        y_std : ndarray of the same shape
            With ``return_std=True`` only.
        """
        check_is_fitted(self)
        noise = getattr(self, "noise_std_", None)
        if return_std and noise is None:
            raise ValueError("return_std=True needs noise_std_, which this model lacks: "
                             "it was saved by s4learn 0.2 or earlier; fit it again")
        if self.net_.module_.n_members == 1:
            y_pred = self._forward(X) * self.target_scale_ + self.target_mean_
            spread = np.zeros_like(y_pred)
        else:
            members = self._member_outputs(X) * self.target_scale_ + self.target_mean_
            y_pred, spread = members.mean(axis=1), members.std(axis=1, ddof=1)
        if not return_std:
            return self._target_shape(y_pred)
        y_std = np.sqrt(spread**2 + noise**2)
        return self._target_shape(y_pred), self._target_shape(y_std)

    def _target_shape(self, y):
        return y.ravel() if self.y_ndim_ == 1 else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _class_weight_value(label, weight):
    """``weight`` as a float, if it is a finite number >= 0 (else ValueError)."""
    if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight >= 0):
        raise ValueError(f"class_weight must give each class a finite weight >= 0; got "
                         f"{weight!r} for class {label!r}")
    return float(weight)


def normalised_weights(sample_weight, n_samples, class_weight):
    """Per-sample loss weights of mean 1 (so that ``lr`` keeps its meaning), float32:
    ``sample_weight`` (None: all 1) times ``class_weight`` (a number or an array)."""
    if sample_weight is None:
        weight = np.ones(n_samples)
    else:
        weight = np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != (n_samples,):
            raise ValueError(f"sample_weight must have shape ({n_samples},), got "
                             f"{weight.shape}")
        if not np.isfinite(weight).all() or (weight < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
    weight = weight * class_weight
    if not weight.max(initial=0) > 0:
        raise ValueError("sample_weight must have a positive sum, not weights that are "
                         "all zero")
    weight = weight / weight.max()  # in [0, 1] first: a mean of huge weights overflows
    return (weight / weight.mean()).astype(np.float32)


def outputs_in_batches(forward, X, batch_size):
    """``forward`` (a batch of samples -> outputs) applied to ``X`` ``batch_size`` samples
    at a time; a ValueError names the samples of the batch that raised it."""
    n_samples = count_samples(X)
    if n_samples is None or n_samples <= batch_size:
        return forward(X)
    if not (isinstance(X, SLICEABLE) or sp.issparse(X)):
        X = np.asarray(X)
    outputs = None
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        try:
            batch = forward(_rows(X, start, stop))
        except ValueError as error:  # name the samples: indices in messages are local
            raise ValueError(f"samples {start} to {stop - 1} of X: {error}") from error
        if outputs is None:
            outputs = np.empty((n_samples, *batch.shape[1:]))
        outputs[start:stop] = batch
    return outputs


def count_samples(X):
    """Number of samples of ``X`` (an array, frame, tensor or list), or None if unknown."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) > 0 and isinstance(shape[0], (int, np.integer)):
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        return None


SLICEABLE = (np.ndarray, pd.DataFrame, pd.Series, torch.Tensor, list, tuple)


def _rows(X, start, stop):
    """Samples ``start`` to ``stop`` of ``X``: a view of an array, rows of a frame."""
    return X.iloc[start:stop] if isinstance(X, (pd.DataFrame, pd.Series)) else X[start:stop]


def _current_parameters(init):
    """``init``'s parameters without its ``**deprecated``: the parameters of 0.1 are
    accepted for one release, but are not parameters (``get_params``, the checks and
    the documentation see the current ones only)."""
    return [parameter for parameter in inspect.signature(init).parameters.values()
            if parameter.kind is not parameter.VAR_KEYWORD]


def _signature_with(init, *keywords):
    """The signature of S4Estimator's ``__init__`` with ``keywords`` added at the end."""
    parameters = _current_parameters(S4Estimator.__init__) + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in keywords]
    return inspect.signature(init).replace(parameters=parameters)


S4Estimator.__init__.__signature__ = _signature_with(S4Estimator.__init__)
S4Classifier.__init__.__signature__ = _signature_with(S4Classifier.__init__,
                                                      ("class_weight", None))
