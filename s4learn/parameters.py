"""The constructor parameters of the estimators: one table, read by everything else.

Each row of :data:`PARAMETERS` says what a parameter of :class:`~s4learn.S4Classifier`
and :class:`~s4learn.S4Regressor` accepts (a list of :class:`Rule`, as scikit-learn's
``_parameter_constraints``), its numpydoc type line and description, and whether it
configures the network. From this table come

- the checks at ``fit`` (:func:`check_parameters`, one uniform message::

      lr must be a positive float, got 'a'

- the Parameters sections of the estimators' docstrings (:func:`parameter_docs`),
- the command line's flags and their help (:mod:`s4learn.cli.arguments`),
- the network's architecture settings (:func:`network_settings`).

Parameters that were removed or renamed are in :data:`DEPRECATED`: they are accepted
for one release with a ``FutureWarning`` that names the replacement.

This module imports neither torch nor scikit-learn, so that the command line can
answer ``--help`` at once.
"""

import math
import numbers
import textwrap
import warnings
from collections.abc import Callable
from typing import NamedTuple

# the values the network accepts (s4learn.nn checks the same tuples; a test keeps them equal)
INITS = ("lin", "inv", "legs")
LAYOUTS = ("auto", "NLC", "NCL", "image", "NHWC", "NCHW")
SCALINGS = ("auto", "column", "channel", "series", "none")
MISSING = ("error", "mask")
DIFFERENCE_CHANNELS = ("auto", "none", "linear", "log")
PRECISIONS = ("float32", "bf16", "fp16")


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter of the wrong type or out of range.

    Both a ValueError and a TypeError, as scikit-learn's error of the same name, so
    either ``except`` catches it. ``parameter`` names the parameter.
    """

    def __init__(self, message, parameter=None):
        super().__init__(message)
        self.parameter = parameter


class Rule(NamedTuple):
    """One kind of value a parameter accepts.

    ``accepts`` tests a value, ``description`` says it in words and ``parse`` reads it
    from the text of a command-line flag (raising ValueError), or is None where no text
    gives such a value.
    """

    accepts: Callable[[object], bool]
    description: str
    parse: Callable[[str], object] = None
    choices: tuple = ()


def _is_bool(value):
    return type(value).__name__ in ("bool", "bool_")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_float(value):
    return isinstance(value, numbers.Real) and not _is_bool(value) and math.isfinite(value)


def options(*values):
    """A rule accepting exactly the strings ``values``."""
    text = repr(values[0]) if len(values) == 1 else f"one of {values}"

    def parse(text):
        if text not in values:
            raise ValueError(f"expected {' or '.join(map(repr, values))}, got {text!r}")
        return text

    return Rule(lambda value: isinstance(value, str) and value in values, text, parse,
                values)


def float_in(low, high, low_closed, high_closed):
    """A rule accepting a finite float between ``low`` and ``high``."""
    def accepts(value):
        if not _is_float(value):
            return False
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
        return above and below

    interval = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
    return Rule(accepts, f"a float in {interval}", float)


def instance_of(type_names, description):
    """A rule accepting instances of the classes named ``type_names`` (or a subclass)."""
    def accepts(value):
        return any(cls.__name__ in type_names for cls in type(value).__mro__)

    return Rule(accepts, description)


POSITIVE_INT = Rule(lambda value: _is_int(value) and value >= 1, "a positive int", int)
EVEN_STATE_SIZE = Rule(lambda value: _is_int(value) and value >= 2 and value % 2 == 0,
                       "an even int >= 2 (N/2 complex modes)", int)
POSITIVE_FLOAT = Rule(lambda value: _is_float(value) and value > 0, "a positive float",
                      float)
NON_NEGATIVE_FLOAT = Rule(lambda value: _is_float(value) and value >= 0, "a float >= 0",
                          float)
INT = Rule(_is_int, "an int", int)
SEED = Rule(lambda value: _is_int(value) and 0 <= value < 2**32, "an int in [0, 2**32)", int)
BOOL = Rule(_is_bool, "a bool")
NONE = Rule(lambda value: value is None, "None",
            lambda text: None if text == "none" else _not_none(text))
ANY = Rule(lambda value: True, "anything")  # checked where it is used, with its own message


def _not_none(text):
    raise ValueError(f"expected 'none', got {text!r}")


def _is_device(value):
    import torch  # here: this module stays importable without torch

    if isinstance(value, torch.device):
        return True
    if not isinstance(value, str):
        return False
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return False
    return True


DEVICE = Rule(_is_device, "a torch device such as 'cpu' or 'cuda:0'", str)


class Parameter(NamedTuple):
    """A row of :data:`PARAMETERS`: accepted values, documentation, role.

    ``kind`` is the numpydoc type line (``int, default=48``) and ``doc`` the
    description; ``network`` marks the settings of a new network's architecture
    (passed to :func:`s4learn.networks.new_network`); ``classifier_only`` marks a
    parameter that only :class:`~s4learn.S4Classifier` has.
    """

    rules: tuple
    kind: str
    doc: str
    network: bool = False
    classifier_only: bool = False


PARAMETERS = {
    "d_model": Parameter((POSITIVE_INT,), "int, default=48", """
        Width of the S4D layers. The default size (48 wide, 2 deep, about 23k
        parameters) suits the small data sets of most tables and time-series archives;
        large data sets such as sequential MNIST gain from wider and deeper networks.""",
        network=True),
    "n_layers": Parameter((POSITIVE_INT,), "int, default=2", """
        Number of residual S4D blocks.""", network=True),
    "d_state": Parameter((EVEN_STATE_SIZE,), "int, default=64", """
        State size N of each layer's SSM (N/2 complex modes per channel).""",
        network=True),
    "n_members": Parameter((POSITIVE_INT,), "int, default=1", """
        Networks trained side by side as an ensemble, in one network of
        ``n_members * d_model`` channels whose members share nothing but the input
        (one batch and one optimizer step train them all, each on its own loss).
        A classifier predicts their mean probability, a regressor their mean; the
        regressor's ``predict(X, return_std=True)`` gives their spread.""",
        network=True),
    "dropout": Parameter((float_in(0, 1, True, False),), "float, default=0.3", """
        Dropout in each block."""),
    "bidirectional": Parameter((BOOL,), "bool, default=False", """
        Non-causal layers that also read the sequence backwards in time (a causal model
        can be streamed, see :mod:`s4learn.streaming`).""", network=True),
    "init": Parameter((options(*INITS),), '{"lin", "inv", "legs"}, default="legs"', """
        Initialisation of the state matrices (S4D-Lin, S4D-Inv, S4D-LegS).""",
        network=True),
    "dt_min": Parameter((POSITIVE_FLOAT, options("auto")), 'float or "auto", default="auto"',
                        """
        Smallest initial step size. ``1 / dt`` is about the number of steps a channel
        remembers at first (the step sizes are trained). "auto" remembers ``min(L, 20)``
        steps of the longest training sequence of ``L`` steps where the sequence is
        summarised by the mean of its steps' features (local patterns counted over the
        whole sequence), and all ``L`` steps for images and for tables whose columns
        differ in scale (where the last step sums up the sequence)."""),
    "dt_max": Parameter((POSITIVE_FLOAT, options("auto")), 'float or "auto", default=1.0',
                        """
        Largest initial step size: channels that remember a step or two. "auto" is
        ``min(1, 100 / L)`` (the S4 defaults 0.001 and 0.1 at ``L = 1000``)."""),
    "difference_channels": Parameter(
        (options(*DIFFERENCE_CHANNELS),), '{"auto", "none", "linear", "log"}, '
        'default="auto"', """
        What the network reads beside each input channel: "linear" adds its
        step-to-step difference, standardised (the first-difference representation of
        time-series classifiers, which shows slopes and edges); "log" adds that and
        its order of magnitude (``asinh(100 z) / asinh(100)`` of the standardised
        difference ``z``), which tells steps of a hundredth of a typical step apart as
        clearly as large jumps; "none" adds nothing. "auto" is "log", except for a
        table whose columns differ in scale (measurements in different units, whose
        neighbours are unrelated): "none". Stored in ``difference_channels_``."""),
    "lr": Parameter((POSITIVE_FLOAT,), "float, default=0.01", """
        AdamW learning rate, decayed to zero over the epochs of ``fit`` by a cosine
        schedule. The SSM parameters (dt and A) train at ``min(lr, 0.001)`` without
        weight decay."""),
    "weight_decay": Parameter((NON_NEGATIVE_FLOAT,), "float, default=0.01", """
        AdamW weight decay of the parameters other than dt and A."""),
    "batch_size": Parameter((POSITIVE_INT, options("auto")), 'int or "auto", default="auto"',
                            """
        Samples per optimizer step; "auto" is an eighth of the training samples, at
        least 8 and at most 64, so small data sets get several steps per epoch. Every
        training batch is full: each epoch, the samples that would make a short last
        batch (fewer than ``batch_size``, drawn at random) sit that epoch out."""),
    "predict_batch_size": Parameter((POSITIVE_INT, options("auto")),
                                    'int or "auto", default="auto"', """
        Samples validated, scaled and run through the network at a time by
        ``predict``, ``predict_proba`` and ``score``: prediction memory grows with this,
        not with the size of ``X``. "auto" chooses it from the network's width and the
        longest sequence of ``X``, so that a batch's activations stay within about 1 GiB
        (at most 256 samples; 5 sequences of 65,536 steps with the default network)."""),
    "max_epochs": Parameter((POSITIVE_INT, options("auto")), 'int or "auto", default="auto"',
                            """
        Passes over the training data in ``fit``. An int trains exactly that many
        epochs (fewer with ``patience``). "auto" trains 15 epochs, or as many as it
        takes to make 100 optimizer steps where 15 epochs make fewer (the smallest
        data sets); ``n_epochs_`` says how many were trained. The output layer is
        refitted in closed form at the end, so a short training suffices."""),
    "patience": Parameter((POSITIVE_INT, NONE), "int or None, default=None", """
        Stop when the validation loss has not improved for this many epochs and keep
        the best epoch's weights. Needs validation data: a ``validation_fraction`` of
        the training data, or ``validation_data`` passed to ``fit``."""),
    "validation_fraction": Parameter((float_in(0, 1, False, False),), "float, default=0.1",
                                     """
        Share of the training data held out (stratified for classifiers) when
        ``patience`` is set and ``fit`` gets no ``validation_data``."""),
    "layout": Parameter((options(*LAYOUTS),),
                        '{"auto", "NLC", "NCL", "image", "NHWC", "NCHW"}, default="auto"', """
        How to read arrays of more than two dimensions. "NLC" reads sequences
        ``(n, length, channels)`` and "NCL" aeon and sktime's ``(n, channels,
        length)`` (also the axes of 2-D samples in a list); "image" reads 3-D arrays as
        single-channel images ``(n, H, W)`` and 4-D arrays as images; "NHWC" and
        "NCHW" name the channel axis of 4-D images. "auto" reads a 3-D array as "NLC"
        when it has more steps than channels and raises otherwise, a 4-D array as
        images whose channel axis is the one of size 1, 3 or 4, and in a list of
        sequences of unequal lengths the axis whose size varies as time. A 2-D array
        or DataFrame is always a table: each row a sequence of its columns."""),
    "grayscale": Parameter((BOOL,), "bool, default=False", """
        Convert RGB images to one luminance channel."""),
    "scaling": Parameter((options(*SCALINGS),),
                         '{"auto", "column", "channel", "series", "none"}, default="auto"', """
        How inputs are standardised: "column" learns a mean and scale per column (per
        step and channel), "channel" one per channel over all steps, "series"
        standardises each sequence's channels over its own steps, "none" leaves the
        values as they are. "auto" is "column" for a table (a DataFrame or 2-D array)
        whose columns differ in scale (the largest standard deviation over ten times
        the median one, as with measurements in different units), and "channel"
        otherwise: sequences, images, and tables of like columns such as pixels or the
        steps of a series, whose relative sizes carry information."""),
    "missing": Parameter((options(*MISSING),), '{"error", "mask"}, default="error"', """
        What a missing value (NaN) inside a sequence does: "error" raises, "mask" sets
        it to 0 after scaling and feeds the network one more channel per input channel
        that is 1 where the value was observed and 0 where it was missing. (All-NaN
        steps at the end of a 3-D array are padding, not missing values.)"""),
    "device": Parameter((options("auto"), DEVICE), 'str, default="auto"', """
        Torch device to train on; "auto" uses CUDA when available, else the CPU."""),
    "random_state": Parameter(
        (NONE, SEED, instance_of(("RandomState",), "a numpy RandomState")),
        "int, RandomState instance or None, default=None", """
        Seeds weight initialisation, shuffling, dropout and the validation split. With
        an int, two fits on the CPU give identical models."""),
    "verbose": Parameter((INT,), "int, default=0", """
        0 is silent; 1 prints one line per epoch (losses, validation score, time) and
        shows a progress bar on an interactive terminal."""),
    "callbacks": Parameter((NONE, instance_of(("list", "tuple"), "a list of skorch "
                                                                 "callbacks")),
                           "list of skorch callbacks or (name, callback) tuples, "
                           "default=None", """
        Extra callbacks for the skorch net; they are copied, never modified."""),
    "warm_start": Parameter((BOOL,), "bool, default=False", """
        When True, ``fit`` continues training the fitted network for another
        ``max_epochs`` instead of starting anew."""),
    "pretrained": Parameter((ANY,), "estimator, path or S4Model, default=None", """
        Start from a pretrained network: a fitted S4Classifier/S4Regressor, the path of
        one saved with :func:`s4learn.save_model` (a joblib/pickle file is refused: load
        one you trust yourself and pass the estimator), or an
        :class:`s4learn.nn.S4Model`. Its architecture replaces ``d_model``,
        ``n_layers``, ``d_state``, ``bidirectional``, ``init``, ``dt_min``, ``dt_max``
        and ``difference_channels``, which are then unused (``dropout`` applies to the
        fine-tuned network); the data must have as many channels per step as it was
        trained on. The output layer is kept when the task is the same (same classes,
        or same number of outputs), else a new one is trained. ``pretrained`` is never
        modified, and ``clone`` keeps it as it is (it is not refitted)."""),
    "finetune": Parameter((NONE, instance_of(("FineTuningMethod",),
                                             "a method from s4learn.peft (LoRA, SDLoRA)")),
                          "LoRA, SDLoRA or None, default=None", """
        How to fine-tune ``pretrained`` (see :mod:`s4learn.peft`); None trains every
        parameter (full fine-tuning). Needs ``pretrained``."""),
    "precision": Parameter((options(*PRECISIONS),), '{"float32", "bf16", "fp16"}, '
                           'default="float32"', """
        Precision of the training steps: "bf16" and "fp16" run the forward pass under
        ``torch.autocast`` (mixed precision), while the S4D kernel and its FFT
        convolution stay in float32. "fp16" needs a CUDA device and scales the loss
        with a GradScaler; on the CPU it is an error (use "bf16"). Validation and
        prediction run in float32. With an ``accelerator``, leave "float32" and set the
        Accelerator's ``mixed_precision``."""),
    "accelerator": Parameter((ANY,), "accelerate.Accelerator or None, default=None", """
        Train through Hugging Face Accelerate (``pip install s4learn[accelerate]``): in
        a script started with ``accelerate launch`` or ``torchrun``, every process
        builds the same estimator and calls ``fit`` on the same data; each trains on
        its share of every batch (``batch_size`` is per process) and all end with
        identical weights. Prediction afterwards is local. ``device`` is then unused:
        the Accelerator places the network. Like ``pretrained``, ``clone`` passes it on
        as it is. See :doc:`/scaling`."""),
    "class_weight": Parameter((NONE, options("balanced"), instance_of(("dict",), "a dict")),
                              'dict, "balanced" or None, default=None', """
        Weights of the classes in the loss, as in scikit-learn's linear models.""",
                              classifier_only=True),
}

# settings that were constructor parameters in 0.1: fixed inside the estimator now
INTERNAL_DEFAULTS = {"norm": "batch", "prenorm": True, "pool": "auto", "min_steps": 100,
                     "num_workers": 0, "compile": False}
NON_NEGATIVE_INT = Rule(lambda value: _is_int(value) and value >= 0, "an int >= 0", int)
# what those settings accept while they are honoured
LEGACY_RULES = {"norm": (options("layer", "batch"),), "prenorm": (BOOL,),
                "pool": (options("auto", "mean", "last", "stats"),),
                "min_steps": (NON_NEGATIVE_INT,),
                "num_workers": (NON_NEGATIVE_INT,), "compile": (BOOL,)}
AUTO_EPOCHS = 15  # max_epochs="auto": at least this many epochs ...
AUTO_STEPS = 100  # ... and at least this many optimizer steps


class Deprecation(NamedTuple):
    """A parameter of 0.1 accepted until 0.3: what replaces it, and how values map."""

    replacement: str
    convert: Callable[[object], object] = None  # the value -> the replacement's value


def _difference_channels(differences):
    return {True: "linear", False: "none"}.get(differences, differences)


DEPRECATED = {
    "differences": Deprecation("difference_channels", _difference_channels),
    "sequence_layout": Deprecation("layout"),
    "image_layout": Deprecation("layout"),
    "input_type": Deprecation("layout", lambda value: "image" if value == "image" else "auto"),
    "min_steps": Deprecation("max_epochs"),
    "norm": Deprecation(""),
    "prenorm": Deprecation(""),
    "pool": Deprecation(""),
    "num_workers": Deprecation(""),
    "compile": Deprecation(""),
}
REMOVED_REASONS = {
    "min_steps": "max_epochs='auto' trains at least 100 optimizer steps; an int "
                 "max_epochs trains exactly that many epochs",
    "norm": "every block uses batch normalisation (s4learn.nn.S4Model keeps norm=)",
    "prenorm": "blocks normalise before each layer (s4learn.nn.S4Model keeps prenorm=)",
    "pool": "the pooling follows the data: the last step for a table whose columns "
            "differ in scale, else statistics of every block's features",
    "num_workers": "the training data are in memory; worker processes add no speed",
    "compile": "call torch.compile on net_.module_ yourself where it pays off",
}


def estimator_parameters(classifier):
    """Names of the constructor parameters, in order, of the classifier or regressor."""
    return [name for name, row in PARAMETERS.items()
            if classifier or not row.classifier_only]


def network_settings(values):
    """The architecture settings among ``values`` (a dict of parameters)."""
    return {name: values[name] for name, row in PARAMETERS.items() if row.network}


def parameter_docs(classifier):
    """The numpydoc Parameters entries of the classifier's or regressor's docstring."""
    entries = []
    for name in estimator_parameters(classifier):
        row = PARAMETERS[name]
        body = textwrap.indent(textwrap.dedent(row.doc).strip(), " " * 8)
        entries.append(f"    {name} : {row.kind}\n{body}")
    return "\n".join(entries)


def describe(rules):
    """``"a positive int or 'auto'"``: the rules of a parameter in words."""
    texts = [rule.description for rule in rules]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]


def check_value(name, value):
    """``value`` if parameter ``name`` accepts it, else InvalidParameterError."""
    rules = PARAMETERS[name].rules if name in PARAMETERS else LEGACY_RULES[name]
    if not any(rule.accepts(value) for rule in rules):
        raise InvalidParameterError(f"{name} must be {describe(rules)}, got {value!r}", name)
    return value


def check_parameters(values):
    """Check every parameter in ``values`` (a dict) and that its device exists.

    Raises
    ------
    InvalidParameterError
        Naming the first parameter whose value is not accepted.
    """
    for name, value in values.items():
        check_value(name, value)
    check_device(values.get("device", "auto"))


def check_device(device):
    """InvalidParameterError when ``device`` names a device this machine does not have."""
    if device == "auto":
        return
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidParameterError(f"device {str(device)!r} is not available: this "
                                        f"machine has no CUDA device; use 'cpu' or 'auto'",
                                        "device")
        if device.index is not None and device.index >= count:
            raise InvalidParameterError(
                f"device {str(device)!r} is not available: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}", "device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError("device 'mps' is not available on this machine",
                                    "device")


def parse_flag(name, text):
    """The value of parameter ``name`` written ``text`` on the command line.

    Tries the parameter's rules in turn; ValueError naming what was expected when none
    reads the text.
    """
    for rule in PARAMETERS[name].rules:
        if rule.parse is None:
            continue
        try:
            return rule.parse(text)
        except ValueError:
            continue
    readable = [rule for rule in PARAMETERS[name].rules if rule.parse is not None]
    raise ValueError(f"expected {describe(readable)}, got {text!r}")


def translate_deprecated(given):
    """Split constructor keywords of 0.1 into current parameters and kept old settings.

    Returns ``(current, internal, messages)``: the values for renamed parameters under
    their new names, the values of removed ones (honoured until they go), and one
    ``FutureWarning`` text for each old name given.
    """
    current, internal, messages = {}, {}, []
    for name, value in given.items():
        if name not in DEPRECATED:
            raise TypeError(f"got an unexpected keyword argument {name!r}")
        deprecation = DEPRECATED[name]
        if deprecation.replacement == "layout":
            if value != "auto":
                current["layout"] = deprecation.convert(value) if deprecation.convert \
                    else value
        elif deprecation.replacement == "difference_channels":
            current["difference_channels"] = deprecation.convert(value)
        else:
            internal[name] = value
        messages.append(_deprecation_message(name, deprecation))
    return current, internal, messages


def _deprecation_message(name, deprecation):
    reason = REMOVED_REASONS.get(name)
    if reason is None:
        return (f"{name} was renamed {deprecation.replacement} in s4learn 0.2 and will be "
                f"removed in 0.3; set {deprecation.replacement} instead")
    return f"{name} is deprecated in s4learn 0.2 and will be removed in 0.3: {reason}"


class LegacyParameters:
    """What an estimator does with the constructor keywords of 0.1, until 0.3.

    Renamed ones set their replacement; removed ones are kept (``legacy_settings``),
    honoured by ``fit`` (:meth:`_setting`) and carried over by ``clone``.
    """

    def _accept_deprecated(self, deprecated, caller_depth):
        """Warn about each of ``deprecated`` at the caller ``caller_depth`` frames up."""
        try:
            current, legacy, messages = translate_deprecated(deprecated)
        except TypeError as error:
            raise TypeError(f"{type(self).__name__}.__init__() {error}") from None
        for message in messages:
            warnings.warn(message, FutureWarning, stacklevel=caller_depth + 1)
        for name, value in current.items():
            setattr(self, name, value)
        if legacy:
            self._legacy_settings = legacy

    def legacy_settings(self):
        """The removed settings of 0.1 this estimator was given, as a dict."""
        return dict(getattr(self, "_legacy_settings", {}))

    def _setting(self, name, default=None):
        """A setting that was a parameter in 0.1: the value given, else ``default`` or
        its fixed value."""
        fixed = INTERNAL_DEFAULTS[name] if default is None else default
        return self.legacy_settings().get(name, fixed)

    def _with_legacy_settings(self, estimator):
        """``estimator`` (a clone of this one) given this one's settings of 0.1."""
        if self.legacy_settings():
            estimator._legacy_settings = self.legacy_settings()
        return estimator
