"""The skorch training engine behind the estimators: one net, callbacks for the rest.

:func:`build_net` assembles the net (class, callbacks, device, precision) from plain
:class:`NetSettings`; :func:`run_training` trains it for one :class:`TrainingRun`, the
small value by which ``fit``, ``resume_fit`` and ``partial_fit`` say what they train.
The callbacks read the run from the net (``net.run_``), so no caller sets their state.
"""

import copy
import math
import os
import re
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import r2_score
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, PrintLog, ProgressBar
from skorch.dataset import ValidSplit, unpack_data
from skorch.utils import TeeGenerator, to_tensor
from torch import distributed as dist
from torch.utils.data import DataLoader, Subset, default_collate

from .batching import LengthGroupedBatchSampler, trim_to_longest
from .checkpoints import restore_net_state, set_rng_states
from .nn import param_groups
from .nn.ensemble import set_member_weights
from .nn.model import pooled_out
from .parameters import check_value
from .readout import readout_layer

# training precision -> autocast dtype (None: no autocast)
PRECISIONS = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_SEED = 2**31 - 1  # seeds drawn for torch and for splits stay below the int32 limit


class S4Net(NeuralNet):
    """skorch ``NeuralNet`` with SSM-aware optimizer groups and weighted losses.

    - The optimizer gets :func:`s4learn.nn.param_groups`: the SSM parameters keep
      their own learning rate and no weight decay; frozen parameters are left out.
    - ``X`` may be a dict ``{"x": sequences, "sample_weight": weights}``; the module
      sees only ``x`` and the per-sample losses (criterion with ``reduction="none"``)
      are weighted before averaging.
    - The epoch table is :class:`PlainPrintLog`'s.
    - ``precision`` ("float32", "bf16" or "fp16") runs the forward pass and the loss
      of each training step under ``torch.autocast`` in that dtype (the S4D
      convolution stays in float32); "fp16" needs CUDA and scales the loss with a
      ``torch.amp.GradScaler``. Evaluation and prediction run in float32.
    - ``compile=True`` runs ``torch.compile(module_)`` (settings ``compile__*``) in
      training and prediction, while ``module_`` itself stays the plain module that is
      saved, pickled and inspected.
    - Training batches are all full when the current :class:`TrainingRun` (``run_``)
      asks for it (see :meth:`get_iterator`).
    """

    run_ = None  # the TrainingRun being trained, set by run_training

    def __init__(self, *args, precision="float32", **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision

    def __setstate__(self, state):
        state.setdefault("precision", "float32")  # pickled before precision existed
        super().__setstate__(state)

    def initialize(self):
        check_value("precision", self.precision)
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        return super().initialize()

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # checked here, not in initialize: a model trained in fp16 on a GPU
        # still loads and predicts on the CPU
        if self.precision == "fp16" and self._device_type() != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device (its loss scaling is "
                             "CUDA's); use precision='bf16' on the CPU")
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def _device_type(self):
        return torch.device(self.device or "cpu").type

    def get_default_callbacks(self):
        return [(name, PlainPrintLog() if name == "print_log" else callback)
                for name, callback in super().get_default_callbacks()]

    def initialize_optimizer(self, *args, **kwargs):
        settings = self.get_params_for("optimizer")
        lr = settings.pop("lr", self.lr)
        weight_decay = settings.pop("weight_decay", 0.0)
        groups = param_groups(self.module_, lr, weight_decay)
        self.optimizer_ = self.optimizer(groups, lr=lr, weight_decay=weight_decay, **settings)
        self.grad_scaler_ = torch.amp.GradScaler(
            "cuda", enabled=self.precision == "fp16" and self._device_type() == "cuda")
        return self

    def train_step_single(self, batch, **fit_params):
        self.module_.train(True)
        self.criterion_.train(True)
        Xi, yi = unpack_data(batch)
        with torch.autocast(self._device_type(), dtype=PRECISIONS[self.precision],
                            enabled=PRECISIONS[self.precision] is not None):
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()  # unscaled unless fp16
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        """skorch's training step; with fp16, the step of the loss-scaled gradients (a
        GradScaler takes no closure)."""
        if not self.grad_scaler_.is_enabled():
            return super().train_step(batch, **fit_params)
        self.optimizer_.zero_grad()
        step = self.train_step_single(batch, **fit_params)
        self.notify("on_grad_computed", batch=batch,
                    named_parameters=TeeGenerator(self.get_all_learnable_params()))
        self.grad_scaler_.step(self.optimizer_)
        self.grad_scaler_.update()
        return step

    def torch_compile(self, module, name):
        return module  # compiled in infer, so that module_ stays the plain module

    def compiled_module(self):
        """``module_``, or with ``compile=True`` its ``torch.compile`` (made once)."""
        if not self.compile:
            return self.module_
        cached = getattr(self, "compiled_module_", None)
        if cached is None or cached[0] is not self.module_:
            compiled = torch.compile(self.module_, **self.get_params_for("compile"))
            self.compiled_module_ = (self.module_, compiled)
        return self.compiled_module_[1]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("compiled_module_", None)  # compiled code is not picklable
        return state

    def get_iterator(self, dataset, training=False):
        """skorch's loader; sequences of unequal lengths go in batches trimmed to the
        longest in each, and training batches group sequences of similar length.

        With the run's ``full_batches`` (as in ``fit``) training batches are all full: when the
        training data hold more than one batch, the samples left over (fewer than a
        batch, a fresh random choice each epoch) sit the epoch out. A short last batch
        would otherwise end every epoch with batch statistics, and an update of the
        running ones, from a few samples. Without it (``partial_fit``) every sample
        trains.
        """
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(dataset)
        if training:
            full_batches = self.run_ is None or self.run_.full_batches
            kwargs.setdefault("drop_last", full_batches and len(dataset) > batch_size)
        lengths = _dataset_lengths(dataset)
        if lengths is None:
            iterator = self.iterator_train if training else self.iterator_valid
            return iterator(dataset, batch_size=batch_size, **kwargs)
        shuffle = kwargs.pop("shuffle", False)
        if training:
            sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle,
                                                drop_last=kwargs.pop("drop_last"))
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=_trimmed_batch,
                              **kwargs)
        return DataLoader(dataset, batch_size=batch_size, collate_fn=_trimmed_batch,
                          **kwargs)

    def infer(self, x, **fit_params):
        if isinstance(x, Mapping):
            if "lengths" in x:
                fit_params = {**fit_params, "lengths": x["lengths"]}
            x = x["x"]
        x = to_tensor(x, device=self.device)
        return self.compiled_module()(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The mean of the per-sample losses (weighted by ``sample_weight``); for the
        members' outputs of an ensemble in training, (batch, n_members, n_outputs),
        each sample's loss is the mean of its members' losses."""
        y_true = to_tensor(y_true, device=self.device)
        if y_pred.dim() == 3:
            loss = torch.stack([self.criterion_(y_pred[:, member], y_true)
                                for member in range(y_pred.shape[1])], dim=1)
        else:
            loss = self.criterion_(y_pred, y_true)
        if loss.dim() > 1:
            loss = loss.flatten(1).mean(dim=1)
        if isinstance(X, Mapping) and "sample_weight" in X:
            loss = loss * to_tensor(X["sample_weight"], device=self.device)
        return loss.mean()


class AcceleratedS4Net(S4Net):
    """:class:`S4Net` trained through a Hugging Face ``accelerate.Accelerator``.

    During ``fit`` the module and the optimizer run prepared by the Accelerator (for
    data parallelism: DistributedDataParallel when the script runs under ``accelerate
    launch`` or ``torchrun``), each process reads its shard of every batch, gradients
    are averaged across processes and the Accelerator's ``mixed_precision`` applies.
    After ``fit`` the module is unwrapped, every process holds the buffers of process 0,
    and prediction is local: any process can predict alone, on all of its data. A later
    ``fit`` (``partial_fit``, ``warm_start``) prepares the module again.

    Only the Accelerator's public methods are used (``prepare``, ``autocast``,
    ``backward``, ``gather_for_metrics``, ``unwrap_model``, ``wait_for_everyone``).
    """

    def __init__(self, *args, accelerator, **kwargs):
        kwargs.setdefault("callbacks__print_log__sink", accelerator.print)  # printed once
        super().__init__(*args, **kwargs)
        self.accelerator = accelerator
        self.prepared_ = False

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if not self.prepared_:
            from accelerate.optimizer import AcceleratedOptimizer  # an optional extra

            self.module_ = self.accelerator.prepare(self.module_)
            if not isinstance(self.optimizer_, AcceleratedOptimizer):
                self.optimizer_ = self.accelerator.prepare(self.optimizer_)
            self.prepared_ = True

    def train_step(self, batch, **fit_params):
        self.optimizer_.zero_grad()
        self.module_.train(True)
        Xi, yi = unpack_data(batch)
        with self.accelerator.autocast():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.accelerator.backward(loss)
        self.notify("on_grad_computed", batch=batch,
                    named_parameters=TeeGenerator(self.get_all_learnable_params()))
        self.optimizer_.step()
        return {"loss": loss, "y_pred": y_pred}

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        return self.accelerator.prepare(iterator) if self.prepared_ else iterator

    def evaluation_step(self, batch, training=False):
        outputs = super().evaluation_step(batch, training=training)
        return self.accelerator.gather_for_metrics(outputs) if self.prepared_ else outputs

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.accelerator.wait_for_everyone()
        self.module_ = self.accelerator.unwrap_model(self.module_, keep_fp32_wrapper=False)
        self.prepared_ = False
        share_buffers_of_process_0(self.module_)
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def infer(self, x, **fit_params):
        if not self.prepared_:  # local prediction: inputs to the module's device
            x = to_tensor(x, device=self.accelerator.device)
        return super().infer(x, **fit_params)


def share_buffers_of_process_0(module):
    """Give every process the buffers (batch-norm statistics) of process 0.

    Gradients are averaged across processes, so the parameters agree; running
    statistics are updated from each process's own shard of the batch, so they would
    differ by the last batches, and so would the processes' predictions.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def _dataset_lengths(dataset):
    """The ``lengths`` of a dataset of ``{"x", "lengths", ...}`` (or a subset of one)."""
    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, dataset.indices
    X = getattr(dataset, "X", None)
    if not isinstance(X, Mapping) or "lengths" not in X:
        return None
    lengths = np.asarray(X["lengths"])
    return lengths if indices is None else lengths[np.asarray(indices)]


def _trimmed_batch(samples):
    """Collate, then cut the padding down to the longest sequence of the batch (the
    layers choose a fast FFT length for whatever length that is)."""
    X, y = default_collate(samples)
    X["x"] = trim_to_longest(X["x"], X["lengths"])
    return X, y


class PlainPrintLog(PrintLog):
    """skorch's per-epoch table, without its colour codes when stdout is no terminal.

    Logs written to a file or a pipe then read as plain text; on a terminal the best
    scores stay highlighted.
    """

    ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")

    def table(self, row):
        text = super().table(row)
        return text if sys.stdout.isatty() else self.ANSI_CODE.sub("", text)


class CosineLR(Callback):
    """Cosine decay of every parameter group's learning rate, set once per epoch.

    Epoch ``e`` of a run that decays (``net.run_.decay_lr``; counted from the epoch the
    run started at) trains at ``lr * (1 + cos(pi * e / epochs)) / 2``; a run that does
    not decay keeps ``lr``. Each group's starting rate is kept in the optimizer's state
    (``initial_lr``), so a resumed optimizer continues the same schedule.
    """

    def on_epoch_begin(self, net, **kwargs):
        run, start = net.run_, getattr(net, "run_start_epoch_", 0)
        factor = 1.0
        if run is not None and run.decay_lr:
            progress = min(max(len(net.history) - 1 - start, 0) / run.epochs, 1.0)
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        for group in net.optimizer_.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
        net.history.record("lr", net.optimizer_.param_groups[0]["lr"])


class ResumableEarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping``, whose state can carry on into a resumed fit.

    skorch resets the count of epochs without improvement, the best score and the best
    weights whenever training begins, and leaves the best weights out of a pickle. Here
    a checkpoint taken during training keeps them, and a fit resumed from it
    sets ``resuming`` so that the saved state is kept: it stops, and restores the best
    epoch, where the uninterrupted fit would have. The best weights are dropped once
    training ends, so a fitted model does not carry a second copy of its network.
    """

    def on_train_begin(self, net, **kwargs):
        if net.run_ is not None and net.run_.checkpoint is not None:
            return  # the checkpoint's state carries on
        super().on_train_begin(net, **kwargs)

    def on_train_end(self, net, **kwargs):
        super().on_train_end(net, **kwargs)
        self.best_model_weights_ = None

    def __getstate__(self):
        return self.__dict__.copy()


def valid_accuracy(net, X, y):
    """Share of validation samples whose most likely class is the true one."""
    logits = net.forward(X)
    return float((logits.argmax(dim=1).numpy() == np.asarray(y)).mean())


def valid_r2(net, X, y):
    """:func:`~sklearn.metrics.r2_score` on the validation samples (averaged over outputs;
    an output whose target is constant scores 1 when predicted exactly, else 0)."""
    y_pred = net.forward(X).numpy()
    return float(r2_score(np.asarray(y).reshape(y_pred.shape), y_pred))


def resolve_device(device):
    """The torch device that ``device`` names; "auto" picks this process's GPU.

    "auto" is the CPU without CUDA. With CUDA it is ``cuda:{LOCAL_RANK}`` when the
    ``LOCAL_RANK`` environment variable is set (by ``torchrun`` and ``accelerate
    launch``: one process per GPU; modulo the number of visible GPUs, so a process
    that sees only its own GPU gets ``cuda:0``), else ``"cuda"``: the first GPU in
    ``CUDA_VISIBLE_DEVICES``, which is how Dask-CUDA and Ray give a worker its GPU.
    Anything other than "auto" is returned unchanged.
    """
    if device != "auto":
        return device
    if not torch.cuda.is_available():
        return "cpu"
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is None:
        return "cuda"
    return f"cuda:{int(local_rank) % torch.cuda.device_count()}"


class TrainingDiverged(ValueError):
    """The training loss stopped being finite: the fit cannot go on."""


class StopOnDivergence(Callback):
    """Stop a fit as soon as a training batch's loss is NaN or infinite.

    Once the loss is not finite the weights are too, and every later epoch would be
    wasted; the error names the learning rate, the usual cause.
    """

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if not training or loss is None:
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training diverged: the training loss became {value} in epoch "
                f"{len(net.history)}; lower the learning rate lr (now {net.lr:g}), or "
                f"check the inputs and targets for extreme values")


def check_accelerator(accelerator, precision):
    """Check an estimator's ``accelerator`` and that its ``precision`` agrees with it.

    The Accelerator's ``mixed_precision`` decides the training precision; the
    estimator's ``precision`` must be "float32" (leave it to the Accelerator) or the
    same.
    """
    try:
        from accelerate import Accelerator
    except ImportError:
        raise ImportError("accelerator= needs Hugging Face Accelerate: "
                          "pip install 's4learn[accelerate]'") from None
    if not isinstance(accelerator, Accelerator):
        raise TypeError(f"accelerator must be an accelerate.Accelerator or None, got "
                        f"{type(accelerator).__name__}")
    check_value("precision", precision)
    accelerator_precision = {"no": "float32"}.get(accelerator.mixed_precision,
                                                  accelerator.mixed_precision)
    if precision not in ("float32", accelerator_precision):
        raise ValueError(f"precision={precision!r} differs from the accelerator's "
                         f"mixed_precision={accelerator.mixed_precision!r}; with an "
                         f"accelerator, set Accelerator(mixed_precision=...) and leave "
                         f"precision='float32'")


@dataclass(frozen=True)
class NetSettings:
    """Everything :func:`build_net` needs, as plain values."""

    criterion: type
    lr: float
    weight_decay: float
    batch_size: int
    callbacks: list
    verbose: int = 0
    device: object = "cpu"
    precision: str = "float32"
    accelerator: object = None
    compile: bool = False
    num_workers: int = 0


def build_net(network, settings):
    """An initialised :class:`S4Net` (or :class:`AcceleratedS4Net`) around ``network``."""
    if settings.accelerator is None:
        net_class = S4Net
        placement = {"device": resolve_device(settings.device),
                     "precision": settings.precision}
    else:
        check_accelerator(settings.accelerator, settings.precision)
        net_class = AcceleratedS4Net
        placement = {"accelerator": settings.accelerator,
                     "device": None if settings.accelerator.device_placement
                     else settings.accelerator.device}
    net = net_class(
        module=network, criterion=settings.criterion, criterion__reduction="none",
        optimizer=torch.optim.AdamW, optimizer__weight_decay=settings.weight_decay,
        lr=settings.lr, batch_size=settings.batch_size, iterator_train__shuffle=True,
        iterator_train__num_workers=settings.num_workers,
        iterator_valid__batch_size=max(256, settings.batch_size), train_split=None,
        callbacks=settings.callbacks, verbose=settings.verbose, compile=settings.compile,
        **placement)
    return net.initialize()


def standard_callbacks(valid_score, score_name, patience, verbose, extra=()):
    """The estimators' callbacks: schedule, divergence, validation score, early stopping
    (with ``patience``), a progress bar (verbose, on a terminal), then copies of ``extra``."""
    callbacks = [("lr_schedule", CosineLR()), ("divergence", StopOnDivergence()),
                 ("valid_score", EpochScoring(valid_score, lower_is_better=False,
                                              name=score_name))]
    if patience is not None:
        callbacks.append(("early_stopping", ResumableEarlyStopping(
            monitor="valid_loss", patience=patience, load_best=True)))
    if verbose and sys.stderr.isatty():
        callbacks.append(("progress_bar", ProgressBar()))
    return callbacks + copy.deepcopy([check_callback(entry) for entry in extra or []])


def check_callback(entry):
    """``entry`` if it is a skorch callback (or its class) or a ``(name, callback)``
    pair; TypeError naming what it is otherwise."""
    callback = entry[1] if isinstance(entry, tuple) and len(entry) == 2 and \
        isinstance(entry[0], str) else entry
    is_callback = isinstance(callback, Callback) or (
        isinstance(callback, type) and issubclass(callback, Callback))
    if not is_callback:
        raise TypeError(f"callbacks must hold skorch callbacks or (name, callback) pairs; "
                        f"got {entry!r} ({type(entry).__name__})")
    return entry


@dataclass(frozen=True)
class TrainingRun:
    """What one call of ``fit``, ``resume_fit`` or ``partial_fit`` trains.

    Attributes
    ----------
    epochs : int
        Epochs of the run (a resumed run trains those its checkpoint lacks).
    new_net : bool
        Build a new net, seeded from ``random_state``, or train the fitted one on.
    decay_lr : bool
        Decay the learning rate to zero over the run (cosine), or keep ``lr``.
    full_batches : bool
        Leave out the samples of a short last batch each epoch, or train every sample.
    checkpoint : dict or None
        The state of an interrupted run to go on from.
    readout : bool
        Refit the output layer in closed form at the end (:mod:`s4learn.readout`).
    """

    epochs: int
    new_net: bool = True
    decay_lr: bool = True
    full_batches: bool = True
    checkpoint: dict = None
    readout: bool = True

    @classmethod
    def fit(cls, epochs, new_net=True):
        """A run of ``fit``: a new net (or, warm-started, the fitted one), the learning
        rate decayed over ``epochs``, full batches."""
        return cls(epochs, new_net=new_net)

    @classmethod
    def resume(cls, epochs, checkpoint):
        """The rest of a ``fit`` run that ``checkpoint`` interrupted."""
        return cls(epochs, checkpoint=checkpoint)

    @classmethod
    def partial_fit(cls, new_net):
        """One epoch at the constant ``lr`` on every sample, the output layer trained as
        the rest (an incremental step, not a finished fit)."""
        return cls(1, new_net=new_net, decay_lr=False, full_batches=False, readout=False)


def net_outputs(net, inputs):
    """The net's outputs (n, n_outputs), or an ensemble's members' (n, n_members,
    n_outputs) inside :func:`~s4learn.nn.model.members_apart`, float64 on the CPU for
    ``inputs`` (``{"x"[, "lengths"]}``); ValueError where they are not finite.

    Sequences of unequal lengths run in order of length, so that each batch is trimmed
    to its longest, and the outputs are put back in the order of ``inputs``.
    """
    lengths = inputs.get("lengths")
    if lengths is not None:
        order = np.argsort(lengths, kind="stable")
        inputs = {"x": inputs["x"][order], "lengths": lengths[order]}
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # loaders draw a seed
        outputs = net.forward(inputs, device="cpu").numpy().astype(np.float64)
    if lengths is not None:
        outputs[order] = outputs.copy()
    not_finite = ~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
    if not_finite.any():
        largest = float(np.abs(inputs["x"]).max())
        raise ValueError(
            f"the network's outputs are not finite for {int(not_finite.sum())} of "
            f"{len(outputs)} samples (the first is sample {int(np.argmax(not_finite))}): "
            f"X is far outside the range of the training data (scaled values up to "
            f"{largest:.3g}, where the training data are about 1); check X's units")
    return outputs


def held_out_split(patience, fraction, stratified):
    """A :class:`~skorch.dataset.ValidSplit` of ``fraction`` when early stopping
    (``patience``) needs validation data, else None; its seed is drawn from torch."""
    if patience is None:
        return None
    return ValidSplit(fraction, stratified=stratified,
                      random_state=int(torch.randint(MAX_SEED, ()).item()))


def run_training(net, run, inputs, y, train_split):
    """Train ``net`` for ``run`` on ``inputs`` and ``y``, validating by ``train_split``."""
    net.run_, net.run_start_epoch_ = run, len(net.history)
    net.train_split = train_split
    epochs = run.epochs
    if run.checkpoint is not None:
        epochs -= restore_checkpoint(net, run.checkpoint)
    try:
        if epochs > 0:
            net.partial_fit(inputs, y, epochs=epochs)
    finally:
        net.run_ = None  # a checkpoint is not kept with the fitted net
    return net


def refit_readout(net, data, classifier):
    """Replace the trained net's output layer by the ridge fit of the targets on its
    pooled features (:mod:`s4learn.readout`); ``data`` is the :class:`TrainingData`.

    Where the net validates (``train_split``), the ridge sees only the training part,
    and the new layer is kept only if it lowers the validation loss; its validation
    loss is then recorded in the last epoch's ``readout_valid_loss``.

    Returns ``(rows, loo)``: the rows of ``data`` the ridge was fitted on and the
    members' leave-one-out predictions of them (see
    :func:`~s4learn.readout.readout_layer`), or None where the layer was not kept.
    """
    network, weights = net.module_, np.asarray(data.inputs["sample_weight"])
    rows, valid = np.arange(len(data.y)), None
    if net.train_split is not None:
        train, valid = net.get_split_datasets(data.inputs, data.y)
        rows = np.asarray(getattr(train, "indices", rows))
    with pooled_out(network):
        pooled = net_outputs(net, data.inputs)[rows]
    weight, bias, loo = readout_layer(pooled, np.asarray(data.y)[rows], weights[rows],
                                      network.n_members, network.d_output, classifier)
    if valid is None:
        set_member_weights(network.decoder, weight, bias)
        return rows, loo
    trained, before = copy.deepcopy(network.decoder.state_dict()), validation_loss(net, valid)
    set_member_weights(network.decoder, weight, bias)
    after = validation_loss(net, valid)
    if after < before:
        net.history.record("readout_valid_loss", after)
        return rows, loo
    network.decoder.load_state_dict(trained)
    return None


def validation_loss(net, dataset):
    """The net's loss on ``dataset``, averaged over samples as skorch's ``valid_loss``."""
    total, count = 0.0, 0
    for batch in net.get_iterator(dataset, training=False):
        n_samples = len(unpack_data(batch)[1])
        total += float(net.validation_step(batch)["loss"]) * n_samples
        count += n_samples
    return total / count


def restore_checkpoint(net, checkpoint):
    """Load a checkpoint's state into ``net``; the number of epochs it had trained."""
    try:
        restore_net_state(net, checkpoint["net"])
        set_rng_states(checkpoint, net.device)
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"the checkpoint does not fit this estimator and data (made "
                         f"with other parameters?): {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from error
    return len(net.history)


@contextmanager
def own_torch_rng(seed, state, device):
    """Run torch's global RNG from a stream of its own, leaving the caller's as it was.

    The stream starts from ``seed`` when ``state`` is None and continues ``state``
    otherwise; yields a dict whose ``"state"`` is the stream's state afterwards.
    """
    devices = [torch.device(device)] if str(device).startswith("cuda") else []
    result = {}
    with torch.random.fork_rng(devices=devices):
        if state is None:
            torch.manual_seed(int(seed))
        else:
            torch.set_rng_state(state)
        yield result
        result["state"] = torch.get_rng_state()
