"""scikit-learn estimators around the S4D network: S4Classifier and S4Regressor."""

import copy
import math
import os
import sys
import warnings
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_is_fitted
from skorch.callbacks import EpochScoring, ProgressBar
from skorch.dataset import Dataset, ValidSplit
from skorch.helper import predefined_split

from .checkpoints import restore_net_state, set_rng_states
from .inputs import (
    apply_scaling,
    check_sequences,
    columns_differ_in_scale,
    fit_scaling,
)
from .nn import S4Model
from .ondisk import ScaledSequences
from .parameters import check_parameter, check_parameters
from .peft import FineTuningMethod, count_merged_parameters, finetuning_network, merge_adapters
from .persistence import read_model_file
from .training import (
    MAX_SEED,
    AcceleratedS4Net,
    CosineLR,
    ResumableEarlyStopping,
    S4Net,
    StopOnDivergence,
    check_accelerator,
    resolve_device,
    valid_accuracy,
    valid_r2,
)

FEW_STEPS_PER_EPOCH = 4  # fewer with a batch_size of the user's own gives a warning
LOCAL_MEMORY = 20  # steps the slowest channels remember at first with dt_min="auto"


class TrainingData(NamedTuple):
    """What the net trains on: ``{"x", "sample_weight"[, "lengths"]}`` and targets."""

    inputs: dict
    y: np.ndarray


_COMMON_PARAMETERS = """\
    d_model : int, default=48
        Width of the S4D layers.
    n_layers : int, default=2
        Number of residual S4D blocks. The default size (48 wide, 2 deep, about 23k
        parameters) suits the small data sets of most tables and time-series
        archives; large data sets such as sequential MNIST gain from wider and deeper
        networks.
    d_state : int, default=64
        State size N of each layer's SSM (N/2 complex modes per channel).
    dropout : float, default=0.3
        Dropout in each block.
    prenorm : bool, default=True
        Normalise before each S4D layer instead of after the residual sum.
    norm : {"batch", "layer"}, default="batch"
        How each block normalises: batch normalisation of each channel over the batch
        and the real time steps (running statistics at prediction), as convolutional
        time-series networks do, or LayerNorm over the channels of each time step, as
        the S4 reference does.
    differences : bool, "log" or "auto", default="auto"
        Also read each input channel's step-to-step difference, standardised: the
        first-difference representation of time-series classifiers, which shows
        slopes and edges to the first layer (``True``). "log" also reads the order of
        magnitude of each step (``asinh(100 z) / asinh(100)`` of the standardised
        difference ``z``), which tells steps of a hundredth of a typical step apart as
        clearly as large jumps: the texture of a signal at rest, such as an appliance
        on standby, beside its switching. "auto" reads both ("log"), except from a
        table whose columns differ in scale (the ``scaling`` and ``pool`` test), where
        neighbouring columns are different measurements (``False``). Stored in
        ``differences_``.
    bidirectional : bool, default=False
        Non-causal layers that also read the sequence backwards in time.
    init : {"lin", "inv", "legs"}, default="legs"
        Initialisation of the state matrices (S4D-Lin, S4D-Inv, S4D-LegS).
    pool : {"auto", "mean", "last"}, default="auto"
        How the network summarises a sequence: the mean of its steps' features, or the
        features of its last step (a causal summary that can be streamed). "auto" is
        "last" for a table whose columns differ in scale (see ``scaling``: a record
        of measurements in different units, which the network then reads column by
        column into one state, as a linear model weighs each column) and "mean"
        otherwise (series, images, tables of like columns).
    dt_min, dt_max : float or "auto", default="auto" and 1.0
        Range of the log-uniform initial step sizes. ``1 / dt`` is about the number of
        steps a channel remembers at first (the step sizes are trained), so the
        defaults span channels that remember a step or two (``dt_max=1.0``) to
        channels that remember ``1 / dt_min`` steps. ``dt_min="auto"`` remembers
        ``min(L, 20)`` steps of the longest training sequence of ``L`` steps where
        the sequence is summarised by the mean of its steps' features (local patterns
        counted over the whole sequence, as with the receptive field of a
        convolutional time-series network), and all ``L`` steps (``1 / L``) for images
        (the pixel above lies a row away) and with ``pool="last"`` (the last step sums
        up the sequence). ``dt_max="auto"`` is ``min(1, 100 / L)`` (the S4 defaults
        0.001 and 0.1 at ``L = 1000``).
    lr : float, default=0.01
        AdamW learning rate, decayed to zero over ``max_epochs`` by a cosine schedule.
        The SSM parameters (dt and A) train at ``min(lr, 0.001)`` without weight decay.
    weight_decay : float, default=0.01
        AdamW weight decay of the parameters other than dt and A.
    batch_size : int or "auto", default="auto"
        Samples per optimizer step; "auto" is an eighth of the training samples,
        at least 8 and at most 64, so small data sets get several steps per epoch.
        Every training batch is full: each epoch, the samples that would make a short
        last batch (fewer than ``batch_size``, drawn at random) sit that epoch out.
    predict_batch_size : int, default=256
        Samples validated, scaled and run through the network at a time by ``predict``,
        ``predict_proba`` and ``score``: prediction memory grows with this, not with the
        size of ``X``.
    max_epochs : int, default=60
        Passes over the training data in ``fit`` (more when ``min_steps`` needs them).
    min_steps : int, default=1500
        Least number of optimizer steps in ``fit``: when ``max_epochs`` epochs give
        fewer, ``fit`` trains for as many epochs as it takes to reach ``min_steps``.
        Small data sets then get enough updates; 0 trains exactly ``max_epochs``.
    patience : int or None, default=None
        Stop when the validation loss has not improved for this many epochs and keep
        the best epoch's weights. Needs validation data: a ``validation_fraction`` of the
        training data, or ``validation_data`` passed to ``fit``.
    validation_fraction : float, default=0.1
        Share of the training data held out (stratified for classifiers) when
        ``patience`` is set and ``fit`` gets no ``validation_data``.
    input_type : {"auto", "sequence", "image"}, default="auto"
        How to read 3-D arrays: as sequences ``(n, L, C)`` ("auto", "sequence") or as
        single-channel images ``(n, H, W)`` ("image"). 4-D arrays are always images.
    image_layout : {"auto", "NHWC", "NCHW"}, default="auto"
        Where the channel axis of 4-D images is; "auto" finds the axis of size 1, 3 or 4.
    sequence_layout : {"auto", "NLC", "NCL"}, default="auto"
        Where the channel axis of 3-D sequence arrays (and of 2-D per-sample arrays in
        a list) is: "NLC" reads ``(n, length, channels)``, "NCL" reads aeon and
        sktime's ``(n, channels, length)``. "auto" reads a 3-D array as "NLC" when it
        has more steps than channels and raises otherwise; in a list of unequal
        lengths, the axis whose size varies is time.
    grayscale : bool, default=False
        Convert RGB images to one luminance channel.
    scaling : {"auto", "column", "channel", "series", "none"}, default="auto"
        How inputs are standardised: "column" learns a mean and scale per column (per
        step and channel), "channel" one per channel over all steps, "series"
        standardises each sequence's channels over its own steps, "none" leaves the
        values as they are. "auto" is "column" for a table (a DataFrame or 2-D
        array) whose columns differ in scale (the largest standard deviation over ten
        times the median one, as with measurements in different units), and
        "channel" otherwise: sequences, images, and tables of like columns such as
        pixels or the steps of a series, whose relative sizes carry information.
    missing : {"error", "mask"}, default="error"
        What a missing value (NaN) inside a sequence does: "error" raises, "mask" sets
        it to 0 after scaling and feeds the network one more channel per input
        channel that is 1 where the value was observed and 0 where it was missing.
        (All-NaN steps at the end of a 3-D array are padding, not missing values.)
    num_workers : int, default=0
        Worker processes of the training data loader.
    device : str, default="auto"
        Torch device to train on; "auto" uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout and the validation split. With
        an int, two fits on the CPU give identical models.
    verbose : int, default=0
        0 is silent; 1 prints one line per epoch (losses, validation score, time) and
        shows a progress bar on an interactive terminal.
    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra callbacks for the skorch net; they are copied, never modified.
    warm_start : bool, default=False
        When True, ``fit`` continues training the fitted network for another
        ``max_epochs`` instead of starting anew.
    pretrained : estimator, path or S4Model, default=None
        Start from a pretrained network: a fitted S4Classifier/S4Regressor, the path of
        one saved with :func:`s4learn.save_model` (a joblib/pickle file is refused:
        load one you trust yourself and pass the estimator), or an
        :class:`s4learn.nn.S4Model`. Its architecture replaces ``d_model``,
        ``n_layers``, ``d_state``, ``prenorm``, ``bidirectional``, ``init``,
        ``dt_min`` and ``dt_max``, which are then unused
        (``dropout`` applies to the fine-tuned network); the data must have as many
        channels per step as it was trained on. The output layer is kept when the
        task is the same (same classes, or same number of outputs), else a new one is
        trained. ``pretrained`` is never modified, and ``clone`` keeps it as it is
        (it is not refitted).
    finetune : LoRA, SDLoRA or None, default=None
        How to fine-tune ``pretrained`` (see :mod:`s4learn.peft`); None trains every
        parameter (full fine-tuning). Needs ``pretrained``.
    precision : {"float32", "bf16", "fp16"}, default="float32"
        Precision of the training steps: "bf16" and "fp16" run the forward pass under
        ``torch.autocast`` (mixed precision), while the S4D kernel and its FFT
        convolution stay in float32, where half precision loses too much accuracy.
        "fp16" needs a CUDA device and scales the loss with a GradScaler; on the CPU
        it is an error (use "bf16"). Validation and prediction run in float32. With
        an ``accelerator``, leave "float32" and set the Accelerator's
        ``mixed_precision`` (or give both the same value).
    compile : bool, default=False
        Run the network through ``torch.compile`` in training and prediction: a slow
        first epoch while it compiles, faster later ones on a GPU. The fitted and
        saved network is the same plain module.
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face Accelerate (``pip install s4learn[accelerate]``):
        in a script started with ``accelerate launch`` or ``torchrun``, every process
        builds the same estimator and calls ``fit`` on the same data; each trains on
        its share of every batch (``batch_size`` is per process) and all end with
        identical weights. Prediction afterwards is local, on any process alone.
        ``device`` is then unused: the Accelerator places the network. Like
        ``pretrained``, ``clone`` passes it on as it is. See :doc:`/scaling`."""

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
        "auto"; longer sequences are accepted at predict).
    scaling_ : str
        The input scaling used: ``scaling`` with "auto" resolved.
    pool_ : str
        The pooling of the network: ``pool`` with "auto" resolved (the pretrained
        network's own when fine-tuning).
    differences_ : bool or "log"
        What the network reads besides each channel: ``differences`` with "auto"
        resolved (the pretrained network's own when fine-tuning).
    input_mean_, input_scale_ : ndarray
        The input standardisation learnt in ``fit``.
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
        Lowest validation loss over the epochs, or the lowest training loss when no
        epoch had validation data."""


class S4Estimator(BaseEstimator):
    """Shared fit/predict machinery; use :class:`S4Classifier` or :class:`S4Regressor`."""

    def __init__(self, *, d_model=48, n_layers=2, d_state=64, dropout=0.3, prenorm=True,
                 norm="batch", differences="auto", bidirectional=False, init="legs",
                 pool="auto", dt_min="auto", dt_max=1.0, lr=0.01, weight_decay=0.01,
                 batch_size="auto", predict_batch_size=256, max_epochs=60, min_steps=1500,
                 patience=None, validation_fraction=0.1,
                 input_type="auto", image_layout="auto", sequence_layout="auto",
                 grayscale=False, scaling="auto", missing="error", num_workers=0,
                 device="auto", random_state=None, verbose=0, callbacks=None,
                 warm_start=False, pretrained=None, finetune=None, precision="float32",
                 compile=False, accelerator=None):
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.dropout = dropout
        self.prenorm = prenorm
        self.norm = norm
        self.differences = differences
        self.bidirectional = bidirectional
        self.init = init
        self.pool = pool
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.predict_batch_size = predict_batch_size
        self.max_epochs = max_epochs
        self.min_steps = min_steps
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.input_type = input_type
        self.image_layout = image_layout
        self.sequence_layout = sequence_layout
        self.grayscale = grayscale
        self.scaling = scaling
        self.missing = missing
        self.num_workers = num_workers
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.pretrained = pretrained
        self.finetune = finetune
        self.precision = precision
        self.compile = compile
        self.accelerator = accelerator

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
        reset = not (self.warm_start and hasattr(self, "net_"))
        data = self._training_data(X, y, sample_weight, reset=reset)
        return self._train(data, validation_data, new_net=reset,
                           epochs=self._n_epochs(data), schedule=True)

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
        data = self._training_data(X, y, sample_weight, reset=True)
        return self._train(data, validation_data, new_net=True, epochs=self._n_epochs(data),
                           schedule=True, checkpoint=checkpoint)

    def _partial_fit(self, X, y, sample_weight, classes=None):
        new_net = not hasattr(self, "net_")
        data = self._training_data(X, y, sample_weight, reset=new_net, classes=classes)
        return self._train(data, None, new_net=new_net, epochs=1, schedule=False)

    def _training_data(self, X, y, sample_weight, *, reset, classes=None):
        """Validated, scaled inputs as the net reads them, with encoded targets."""
        self._check_hyperparameters()
        X, lengths, y = check_sequences(self, X, y, reset=reset,
                                        **self._target_check_params())
        y = self._encode_targets(y, reset=reset, classes=classes)
        weight = self._sample_weight(sample_weight, len(X), y)
        if reset:
            self._fit_input_scaling(X, lengths)
            self.n_epochs_ = 0
        return TrainingData({**self._net_inputs(X, lengths), "sample_weight": weight}, y)

    def _net_inputs(self, X, lengths):
        """``{"x": scaled X[, "lengths"]}``: the dict of inputs the net reads."""
        inputs = {"x": self._scale_inputs(X, lengths)}
        if lengths is not None:
            inputs["lengths"] = lengths
        return inputs

    def _train(self, data, validation_data, *, new_net, epochs, schedule, checkpoint=None):
        """Build a new net (or keep ``net_``) and train it ``epochs`` more epochs.

        ``schedule``: True decays the learning rate over these epochs, False keeps
        ``lr`` constant. ``checkpoint``: the state of an interrupted fit to go on from
        (the epochs it trained are not trained again).
        """
        with self._torch_rng(fresh=new_net):
            if new_net:
                self.net_ = self._build_net(self._network(data),
                                            self._batch_size(len(data.y)))
            self._set_schedule(total=epochs if schedule else None)
            self.net_.full_batches = schedule  # partial_fit trains on every sample
            self.net_.train_split = self._train_split(validation_data)
            if checkpoint is not None:
                epochs -= self._restore(checkpoint)
            if epochs > 0:
                self.net_.partial_fit(data.inputs, data.y, epochs=epochs)
        self.n_epochs_ = len(self.net_.history)
        return self

    def _restore(self, checkpoint):
        """Load a checkpoint's state into the new ``net_``; the epochs it had trained."""
        try:
            restore_net_state(self.net_, checkpoint["net"])
            set_rng_states(checkpoint, self.net_.device)
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise ValueError(f"the checkpoint does not fit this estimator and data (made "
                             f"with other parameters?): {type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}") from error
        for _, callback in self.net_.callbacks_:
            if isinstance(callback, ResumableEarlyStopping):
                callback.resuming = True
        return len(self.net_.history)

    def _n_epochs(self, data):
        """``max_epochs``, raised where needed to reach ``min_steps`` optimizer steps."""
        n_train = len(data.y)
        if self.patience is not None:
            n_train = int(n_train * (1 - self.validation_fraction))
        steps_per_epoch = max(n_train // self._batch_size(len(data.y)), 1)  # full batches
        if steps_per_epoch < FEW_STEPS_PER_EPOCH and self.batch_size != "auto":
            warnings.warn(f"batch_size={self.batch_size} gives {steps_per_epoch} optimizer "
                          f"step(s) per epoch on {n_train} training samples; a smaller "
                          f"batch_size (or 'auto') trains better on small data",
                          stacklevel=3)  # the caller of fit / resume_fit
        return max(self.max_epochs, math.ceil(self.min_steps / steps_per_epoch))

    def _batch_size(self, n_samples):
        """``batch_size``, or with "auto" an eighth of the data within [8, 64]."""
        if self.batch_size == "auto":
            return int(min(max(n_samples // 8, 8), 64))
        return self.batch_size

    def _check_hyperparameters(self):
        """Every constructor parameter checked (:data:`s4learn.parameters.PARAMETER_RULES`)."""
        check_parameters(self)

    def _sample_weight(self, sample_weight, n_samples, y):
        if sample_weight is None:
            weight = np.ones(n_samples)
        else:
            weight = np.asarray(sample_weight, dtype=np.float64)
            if weight.shape != (n_samples,):
                raise ValueError(f"sample_weight must have shape ({n_samples},), got "
                                 f"{weight.shape}")
            if not np.isfinite(weight).all() or (weight < 0).any():
                raise ValueError("sample_weight must be finite and non-negative")
        weight = weight * self._class_weight(y)
        if weight.sum() <= 0:
            raise ValueError("sample_weight must have a positive sum, not weights that are "
                             "all zero")
        return (weight / weight.mean()).astype(np.float32)  # mean 1: lr stays meaningful

    def _class_weight(self, y):
        return 1.0

    def _fit_input_scaling(self, X, lengths):
        """Learn how inputs are standardised (``scaling_``, ``input_mean_``/``_scale_``),
        differenced (``differences_``) and pooled over time (``pool_``)."""
        unlike_columns = ("auto" in (self.scaling, self.pool, self.differences)
                          and self._is_table() and columns_differ_in_scale(X))
        self.scaling_ = self._resolve_scaling(lengths, unlike_columns)
        self.pool_ = ("last" if unlike_columns else "mean") if self.pool == "auto" \
            else self.pool
        if self.differences == "auto":
            self.differences_ = False if unlike_columns else "log"
        else:
            self.differences_ = self.differences
        self.n_timepoints_ = int(X.shape[1])
        self.input_mean_, self.input_scale_ = fit_scaling(X, lengths, self.scaling_)

    def _is_image(self):
        """Whether ``fit`` got images: ``input_type="image"`` or a 4-D array."""
        return self.input_type == "image" or len(getattr(self, "input_shape_", ())) == 3

    def _is_table(self):
        """Whether ``fit`` got a table: a DataFrame or 2-D array of values per sample."""
        return len(getattr(self, "input_shape_", ())) == 1 and self.input_type != "image"

    def _resolve_scaling(self, lengths, unlike_columns):
        if self.scaling == "auto":
            return "column" if unlike_columns else "channel"
        if self.scaling == "column" and lengths is not None:
            raise ValueError("scaling='column' needs sequences of one length; use "
                             "scaling='channel' or 'series' for unequal lengths")
        return self.scaling

    def _scale_inputs(self, X, lengths):
        """Inputs as the network reads them; ValueError where scaling leaves float32."""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            scaled = apply_scaling(X, lengths, self.scaling_, self.input_mean_,
                                   self.input_scale_,
                                   missing_indicators=self.missing == "mask")
        if isinstance(scaled, ScaledSequences):  # read from its file batch by batch later
            return scaled
        not_finite = ~np.isfinite(scaled)
        if not_finite.any():
            sample = int(np.flatnonzero(not_finite.any(axis=(1, 2)))[0])
            raise ValueError(
                f"X is not finite after the input scaling learnt in fit (sample {sample} of "
                f"this batch overflows float32): its values are far outside the range of the "
                f"training data; check X's units, or rescale it")
        return scaled

    def _network(self, data):
        """The S4Model to train: new, or adapted from ``pretrained``."""
        d_input = data.inputs["x"].shape[-1]
        if self.pretrained is None:
            if self.finetune is not None:
                raise ValueError("finetune needs a pretrained model: pass pretrained=")
            dt_min, dt_max = self._dt_range()
            network = S4Model(
                d_input=d_input, d_output=self._n_outputs(), d_model=self.d_model,
                n_layers=self.n_layers, d_state=self.d_state, dropout=self.dropout,
                prenorm=self.prenorm, norm=self.norm, differences=bool(self.differences_),
                log_differences=self.differences_ == "log",
                bidirectional=self.bidirectional, init=self.init,
                pool=self.pool_, dt_min=dt_min, dt_max=dt_max)
            self._record_parameter_counts(network)
            return network
        pretrained_network, pretrained_estimator = load_pretrained(self.pretrained)
        if self.finetune is not None and not isinstance(self.finetune, FineTuningMethod):
            raise TypeError(f"finetune must be a method from s4learn.peft (LoRA, SDLoRA) or "
                            f"None, got {type(self.finetune).__name__}")
        network = finetuning_network(
            pretrained_network, d_input, self._n_outputs(),
            keep_head=self._same_task(pretrained_estimator),
            device=resolve_device(self.device), dropout=self.dropout)
        self.pool_ = network.pool
        self.differences_ = "log" if network.log_differences else network.differences
        if self.finetune is not None:
            run = self.finetune.warmup_run(network)
            warmed_up = None if run is None else self._warm_up(run, data)
            network = self.finetune.adapt(network, warmed_up)
        self._record_parameter_counts(network)
        return network

    def _warm_up(self, run, data):
        """Train ``run.network`` (a :class:`~s4learn.peft.WarmupRun`) on ``data``."""
        if self.verbose:
            print(f"Warmup: {run.epochs} epoch(s) of the SSM parameters at lr={run.lr} to "
                  f"choose the dimensions to tune")
        net = self._build_net(run.network, self._batch_size(len(data.y)), lr=run.lr,
                              callbacks=[])
        net.partial_fit(data.inputs, data.y, epochs=run.epochs)
        return run.network

    def _dt_range(self):
        """``(dt_min, dt_max)`` with "auto" resolved (see the ``dt_min`` parameter).

        ``1 / dt`` is about how many steps a channel remembers at first. For the longest
        training sequence of L steps, "auto" is ``dt_min = 1 / min(L, 20)`` for local
        patterns pooled by their mean, ``1 / L`` where the whole sequence is needed, and
        ``dt_max = min(1, 100 / L)``: the S4 defaults (0.001, 0.1) at L = 1000.
        """
        L = self.n_timepoints_
        if self.dt_min == "auto":
            whole_sequence = self.pool_ == "last" or self._is_image()
            dt_min = 1.0 / (L if whole_sequence else min(L, LOCAL_MEMORY))
        else:
            dt_min = self.dt_min
        dt_max = min(1.0, 100.0 / L) if self.dt_max == "auto" else self.dt_max
        if dt_min > dt_max:
            raise ValueError(f"dt_min must not exceed dt_max, got {dt_min!r} > {dt_max!r}")
        return dt_min, dt_max

    def _record_parameter_counts(self, network):
        """Set ``n_params_`` (adapters merged) and ``n_trainable_params_``."""
        self.n_trainable_params_ = sum(parameter.numel() for parameter in
                                       network.parameters() if parameter.requires_grad)
        self.n_params_ = count_merged_parameters(network)

    def _build_net(self, network, batch_size=64, lr=None, callbacks=None):
        net_class, placement = self._net_class_and_placement()
        net = net_class(
            module=network, criterion=self._criterion, criterion__reduction="none",
            optimizer=torch.optim.AdamW, optimizer__weight_decay=self.weight_decay,
            lr=self.lr if lr is None else lr, batch_size=batch_size,
            max_epochs=self.max_epochs, iterator_train__shuffle=True,
            iterator_train__num_workers=self.num_workers,
            iterator_valid__batch_size=max(256, batch_size), train_split=None,
            callbacks=self._callbacks() if callbacks is None else callbacks,
            verbose=self.verbose, compile=self.compile, **placement)
        return net.initialize()

    def _net_class_and_placement(self):
        """S4Net and its device and precision, or AcceleratedS4Net and its accelerator."""
        if self.accelerator is None:
            return S4Net, {"device": resolve_device(self.device),
                           "precision": self.precision}
        check_accelerator(self.accelerator, self.precision)
        device = None if self.accelerator.device_placement else self.accelerator.device
        return AcceleratedS4Net, {"accelerator": self.accelerator, "device": device}

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

    def _callbacks(self):
        callbacks = [("lr_schedule", CosineLR()), ("divergence", StopOnDivergence()),
                     ("valid_score", EpochScoring(self._valid_score, lower_is_better=False,
                                                  name=self._valid_score_name))]
        if self.patience is not None:
            callbacks.append(("early_stopping", ResumableEarlyStopping(
                monitor="valid_loss", patience=self.patience, load_best=True)))
        if self.verbose and sys.stderr.isatty():
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks + copy.deepcopy(list(self.callbacks or []))

    def _train_split(self, validation_data):
        if validation_data is not None:
            X_val, y_val = validation_data
            try:
                X_val, lengths, y_val = check_sequences(self, X_val, y_val, reset=False,
                                                        **self._target_check_params())
                y_val = self._encode_targets(y_val, reset=False)
            except ValueError as error:
                raise ValueError(f"validation_data: {error}") from error
            inputs = self._net_inputs(X_val, lengths)
            return predefined_split(Dataset(inputs, y_val))
        if self.patience is None:
            return None
        return ValidSplit(self.validation_fraction, stratified=self._stratified_split,
                          random_state=int(torch.randint(MAX_SEED, ()).item()))

    def _set_schedule(self, total):
        schedule = dict(self.net_.callbacks_)["lr_schedule"]
        schedule.total_epochs = total
        schedule.start_epoch = len(self.net_.history)

    @contextmanager
    def _torch_rng(self, fresh):
        """Run torch's global RNG from this estimator's own stream, leaving the caller's.

        ``fresh``: start the stream from ``random_state``, else continue it.
        """
        devices = [torch.device(self._train_device(fresh))] if self._uses_cuda(fresh) \
            else []
        with torch.random.fork_rng(devices=devices):
            if fresh or not hasattr(self, "torch_rng_state_"):
                seed = check_random_state(self.random_state).randint(MAX_SEED)
                torch.manual_seed(int(seed))
            else:
                torch.set_rng_state(self.torch_rng_state_)
            yield
            self.torch_rng_state_ = torch.get_rng_state()

    def _uses_cuda(self, reset):
        return str(self._train_device(reset)).startswith("cuda")

    def _train_device(self, reset):
        """The device that training runs on: the accelerator's, ``device``'s or net_'s."""
        if self.accelerator is not None:
            return self.accelerator.device
        return resolve_device(self.device) if reset else self.net_.device

    # --------------------------------------------------------------- prediction
    def _forward(self, X):
        """Network outputs for ``X`` as a float64 array (n_samples, n_outputs).

        ``X`` is validated, scaled and run ``predict_batch_size`` samples at a time, so
        that no float32 or scaled copy of the whole of a large ``X`` is ever made.
        """
        check_is_fitted(self)
        batch_size = check_parameter(self, "predict_batch_size")
        n_samples = _n_samples(X)
        if n_samples is None or n_samples <= batch_size:
            return self._forward_batch(X)
        if not isinstance(X, SLICEABLE):
            X = np.asarray(X)
        outputs = np.empty((n_samples, self._n_outputs()))
        for start in range(0, n_samples, batch_size):
            stop = min(start + batch_size, n_samples)
            try:
                outputs[start:stop] = self._forward_batch(_rows(X, start, stop))
            except ValueError as error:  # name the samples: indices in messages are local
                raise ValueError(f"samples {start} to {stop - 1} of X: {error}") from error
        return outputs

    def _forward_batch(self, X):
        """Network outputs for a batch of samples; ValueError where they are not finite."""
        X, lengths = check_sequences(self, X, reset=False)
        inputs = self._net_inputs(X, lengths)
        if lengths is not None:  # batches of similar lengths, trimmed; order restored
            order = np.argsort(lengths, kind="stable")
            inputs = {"x": inputs["x"][order], "lengths": lengths[order]}
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # loaders draw a seed
            outputs = self.net_.forward(inputs, device="cpu").numpy().astype(np.float64)
        if lengths is not None:
            outputs[order] = outputs.copy()
        not_finite = ~np.isfinite(outputs).all(axis=1)
        if not_finite.any():
            largest = float(np.abs(inputs["x"]).max())
            raise ValueError(
                f"the network's outputs are not finite for {int(not_finite.sum())} of "
                f"{len(outputs)} samples (the first is sample {int(np.argmax(not_finite))}): "
                f"X is far outside the range of the training data (scaled values up to "
                f"{largest:.3g}, where the training data are about 1); check X's units")
        return outputs

    def __sklearn_clone__(self):
        # a fitted pretrained model is data, not a sub-estimator: keep it as it is
        # nor is an accelerator (one per process): both are passed on as they are
        params = self.get_params(deep=False)
        kept = {name: params.pop(name) for name in ("pretrained", "accelerator")}
        params = {name: clone(value, safe=False) for name, value in params.items()}
        return type(self)(**params, **kept)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------- training curves from net_.history
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
        return min(loss for loss in losses if loss is not None)

    def _history_column(self, key, optional=False):
        """One value per epoch of ``net_.history``; with ``optional``, None where an
        epoch lacks ``key``, and None instead of the list when every epoch lacks it."""
        check_is_fitted(self)
        values = [row.get(key) for row in self.net_.history]
        if optional and all(value is None for value in values):
            return None
        return [None if value is None else float(value) for value in values]


class S4Classifier(ClassifierMixin, S4Estimator):
    __doc__ = f"""S4 sequence classifier: an S4D network trained by a skorch net.

    Reads each sample as a sequence (a table row is a sequence of its columns, an image
    a sequence of its pixels) and predicts its class.

    Parameters
    ----------
{_COMMON_PARAMETERS}
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn's linear models.

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
    >>> clf = S4Classifier(d_model=16, n_layers=1, max_epochs=5, min_steps=0, random_state=0)
    >>> clf.fit(X[:200], y[:200]).predict(X[:3]).shape
    (3,)
    """

    _criterion = torch.nn.CrossEntropyLoss
    _stratified_split = True
    _valid_score = staticmethod(valid_accuracy)
    _valid_score_name = "valid_acc"

    def __init__(self, *, d_model=48, n_layers=2, d_state=64, dropout=0.3, prenorm=True,
                 norm="batch", differences="auto", bidirectional=False, init="legs",
                 pool="auto", dt_min="auto", dt_max=1.0, lr=0.01, weight_decay=0.01,
                 batch_size="auto", predict_batch_size=256, max_epochs=60, min_steps=1500,
                 patience=None, validation_fraction=0.1,
                 input_type="auto", image_layout="auto", sequence_layout="auto",
                 grayscale=False, scaling="auto", missing="error", num_workers=0,
                 device="auto", random_state=None, verbose=0, callbacks=None,
                 warm_start=False, pretrained=None, finetune=None, precision="float32",
                 compile=False, accelerator=None, class_weight=None):
        super().__init__(
            d_model=d_model, n_layers=n_layers, d_state=d_state, dropout=dropout,
            prenorm=prenorm, norm=norm, differences=differences,
            bidirectional=bidirectional, init=init, pool=pool,
            dt_min=dt_min, dt_max=dt_max, lr=lr, weight_decay=weight_decay,
            batch_size=batch_size, predict_batch_size=predict_batch_size,
            max_epochs=max_epochs, min_steps=min_steps,
            patience=patience, validation_fraction=validation_fraction,
            input_type=input_type, image_layout=image_layout,
            sequence_layout=sequence_layout, grayscale=grayscale, scaling=scaling,
            missing=missing, num_workers=num_workers, device=device,
            random_state=random_state, verbose=verbose, callbacks=callbacks,
            warm_start=warm_start, pretrained=pretrained, finetune=finetune,
            precision=precision, compile=compile, accelerator=accelerator)
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
            class_weight = {self._class_index(label): weight
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

    def _same_task(self, pretrained_estimator):
        """Whether the pretrained output layer fits this task (a bare S4Model: yes)."""
        if pretrained_estimator is None:
            return True
        classes = getattr(pretrained_estimator, "classes_", None)
        return classes is not None and np.array_equal(classes, self.classes_)

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
{_COMMON_PARAMETERS}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The target standardisation learnt in ``fit``.
{_COMMON_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from s4learn import S4Regressor
    >>> X = np.random.RandomState(0).randn(100, 20)
    >>> reg = S4Regressor(d_model=16, n_layers=1, max_epochs=5, min_steps=0, random_state=0)
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

    def _same_task(self, pretrained_estimator):
        if pretrained_estimator is None:
            return True
        return getattr(pretrained_estimator, "n_outputs_", None) == self.n_outputs_

    def predict(self, X):
        """Predicted targets: shape (n_samples,) for a 1-D ``y`` in fit, else 2-D."""
        y = self._forward(X) * self.target_scale_ + self.target_mean_
        return y.ravel() if self.y_ndim_ == 1 else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _n_samples(X):
    """Number of samples of ``X`` (an array, frame, tensor or list), or None if unknown."""
    try:
        return _num_samples(X)
    except TypeError:
        return None


SLICEABLE = (np.ndarray, pd.DataFrame, pd.Series, torch.Tensor, list, tuple, sp.spmatrix,
             sp.sparray)


def _rows(X, start, stop):
    """Samples ``start`` to ``stop`` of ``X``: a view of an array, rows of a frame."""
    return X.iloc[start:stop] if isinstance(X, (pd.DataFrame, pd.Series)) else X[start:stop]


def load_pretrained(pretrained, allow_pickle=False):
    """``(network, estimator)`` from a fitted estimator, a saved one, or an S4Model.

    ``estimator`` is None when ``pretrained`` is a bare :class:`~s4learn.nn.S4Model`.
    The network is the pretrained object itself, not a copy. A path must be a file
    written by :func:`s4learn.save_model`; joblib/pickle files, which can run code
    when loaded, are read only with ``allow_pickle=True``.
    """
    if isinstance(pretrained, (str, os.PathLike)):
        if not os.path.isfile(pretrained):
            raise ValueError(f"pretrained model file not found: {os.fspath(pretrained)!r}")
        pretrained = read_model_file(pretrained, allow_pickle)
    if isinstance(pretrained, Pipeline):  # SequenceWindows and the estimator
        pretrained = pretrained[-1]
    if isinstance(pretrained, S4Model):
        return pretrained, None
    if isinstance(pretrained, S4Estimator):
        check_is_fitted(pretrained)
        return pretrained.net_.module_, pretrained
    raise TypeError(f"pretrained must be a fitted S4Classifier or S4Regressor, a path to "
                    f"one saved with s4learn.save_model, or an s4learn.nn.S4Model; got "
                    f"{type(pretrained).__name__}")
