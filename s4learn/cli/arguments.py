"""The ``s4learn`` argument parser: its commands, flags and their checks.

The flags that set estimator parameters come from one table, :data:`ESTIMATOR_FLAGS`:
each row names a constructor parameter of :class:`~s4learn.S4Classifier` and how to
parse the flag's text; the flag's default and help text are read from the estimator
(its signature and its numpydoc docstring), and :func:`estimator_settings` builds the
estimator's keyword arguments from the same rows. A row's parse function reads only the
type (an int, a number); the values each parameter accepts are checked by the estimator's
own table (:mod:`s4learn.parameters`), through :func:`check_estimator_flags`, so the
command and the Python API accept and refuse the same values with the same words.
"""

import argparse
import inspect
import re
from dataclasses import dataclass

from .. import __version__
from ..estimators import S4Classifier
from ..parameters import InvalidParameterError, check_parameters
from ..peft import LoRA, SDLoRA
from .errors import UsageError

DESCRIPTION = "The s4learn command: train an S4 model on a data set, or predict with one."
# settings of each --finetune method, named as the method's parameters (and the flags)
LORA_SETTINGS = ("lora_rank", "ssm_method", "lp_method", "D_method")
SELECTION_SETTINGS = ("select_channels_dim", "updatable_channels_dim", "select_states_dim",
                      "updatable_states_dim", "warmup_epochs", "warmup_lr")
METHOD_SETTINGS = {"full": (), "lora": LORA_SETTINGS,
                   "sdlora": LORA_SETTINGS + SELECTION_SETTINGS}
# options that the pretrained network's architecture replaces
ARCHITECTURE_OPTIONS = ("n_layers", "d_model", "d_state", "prenorm", "norm", "differences",
                        "bidirectional", "init", "dt_min", "dt_max")


# ------------------------------------------------------------------- parse functions
def integer(text):
    """An int (its range is the estimator's to check)."""
    return _number(text, int, "an int")


def number(text):
    """A float (its range is the estimator's to check)."""
    return _number(text, float, "a number")


def positive_int(text):
    """An int >= 1."""
    value = _number(text, int, "an int")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def non_negative_int(text):
    """An int >= 0."""
    value = _number(text, int, "an int")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def positive_float(text):
    """A float > 0."""
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def auto_or(parse):
    """A parse function that takes ``"auto"`` as itself and any other text by ``parse``.

    ``auto_or(positive_int)`` reads ``--batch_size auto`` and ``--batch_size 32``.
    """
    def parse_auto_or_value(text):
        if text == "auto":
            return "auto"
        try:
            return parse(text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{error} or 'auto'") from None

    parse_auto_or_value.__name__ = f"auto_or_{parse.__name__}"
    return parse_auto_or_value


def balanced_or_none(text):
    """``"balanced"``, or ``"none"`` for equal class weights (None)."""
    if text in ("balanced", "none"):
        return None if text == "none" else text
    raise argparse.ArgumentTypeError(f"expected 'balanced' or 'none', got {text!r}")


def _number(text, kind, what):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _dimension(text):
    """An int count (``"8"``) or a float share in (0, 1] (``"0.25"``)."""
    try:
        value = int(text)
    except ValueError:
        pass
    else:
        if value < 0:
            raise argparse.ArgumentTypeError(f"a count must be >= 0, got {text!r}")
        return value
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an int count nor a float share in (0, 1]") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"a share must be a float in (0, 1], got {text!r} (or give an int count)")
    return value


# ------------------------------------------------------------------ estimator flags
@dataclass(frozen=True)
class Switch:
    """The parse of an on/off flag, ``--NAME`` / ``--no-NAME``; with ``values``, also
    ``--NAME VALUE`` for one of them (``--differences log``)."""

    values: tuple = ()


class _SwitchAction(argparse.BooleanOptionalAction):
    """``--NAME`` sets True, ``--no-NAME`` False and ``--NAME VALUE`` the VALUE."""

    def __init__(self, option_strings, dest, values=(), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        if values:
            self.nargs, self.choices, self.metavar = "?", values, "|".join(values)

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None or self.nargs == 0:  # no value: on or off
            super().__call__(parser, namespace, values, option_string)
        elif option_string.startswith("--no-"):
            raise argparse.ArgumentError(self, f"{option_string} takes no value")
        else:
            setattr(namespace, self.dest, values)


SWITCH = Switch()
FROM_ESTIMATOR = "from the estimator"  # the default of a flag: the estimator's own


@dataclass(frozen=True)
class EstimatorFlag:
    """One row of the flag table: a flag that sets one estimator parameter.

    Attributes
    ----------
    parameter : str
        The constructor parameter of S4Classifier (and S4Regressor, where it has it).
    parse : callable or Switch
        Reads the flag's text into the parameter's value. Where the docstring lists the
        values (``{"a", "b"}``), they become the flag's choices.
    flag : str or None
        The flag's name where it differs from the parameter's.
    default : object
        The flag's default where the command line's differs from the estimator's.
    note : str
        Said in the help text after the estimator's description of the parameter.
    """

    parameter: str
    parse: object
    flag: str = None
    default: object = FROM_ESTIMATOR
    note: str = ""

    @property
    def dest(self):
        return self.flag or self.parameter

    @property
    def default_value(self):
        if self.default is not FROM_ESTIMATOR:
            return self.default
        return inspect.signature(S4Classifier).parameters[self.parameter].default


ESTIMATOR_FLAGS = (
    EstimatorFlag("d_model", integer),
    EstimatorFlag("n_layers", integer),
    EstimatorFlag("d_state", integer),
    EstimatorFlag("dropout", number),
    EstimatorFlag("prenorm", SWITCH),
    EstimatorFlag("norm", str),
    EstimatorFlag("differences", Switch(values=("log",))),
    EstimatorFlag("bidirectional", SWITCH),
    EstimatorFlag("init", str),
    EstimatorFlag("pool", str),
    EstimatorFlag("dt_min", auto_or(number)),
    EstimatorFlag("dt_max", auto_or(number)),
    EstimatorFlag("lr", number),
    EstimatorFlag("weight_decay", number),
    EstimatorFlag("batch_size", auto_or(integer)),
    EstimatorFlag("predict_batch_size", integer,
                  note="Saved with the model: 's4learn predict' reads the data in batches "
                       "of this size."),
    EstimatorFlag("max_epochs", integer, flag="epochs"),
    EstimatorFlag("min_steps", integer),
    EstimatorFlag("patience", integer),
    EstimatorFlag("validation_fraction", number,
                  note="Used only when the data have no validation split."),
    EstimatorFlag("class_weight", balanced_or_none,
                  note="Classification only; 'none' weighs the classes equally."),
    EstimatorFlag("input_type", str,
                  note="digits, mnist and cifar10 are read as images."),
    EstimatorFlag("image_layout", str),
    EstimatorFlag("sequence_layout", str),
    EstimatorFlag("scaling", str),
    EstimatorFlag("missing", str),
    EstimatorFlag("num_workers", integer),
    EstimatorFlag("device", str),
    EstimatorFlag("precision", str),
    EstimatorFlag("compile", SWITCH),
    # a fixed seed by default: the random split and a resumed run must repeat
    EstimatorFlag("random_state", int, flag="seed", default=0,
                  note="Also seeds the random split of the data."),
)
# estimator parameters without a row, and why: the test of the table checks that every
# parameter of the estimator is in the table or here
NOT_FLAGS = {
    "grayscale": "--grayscale converts CIFAR-10 as it is read",
    "verbose": "--quiet sets it",
    "callbacks": "Python objects; the command adds its checkpoint callback",
    "warm_start": "each run trains anew or resumes with --resume",
    "pretrained": "--pretrained",
    "finetune": "--finetune and its settings",
    "accelerator": "a Python object, one per process; scripts pass an accelerate.Accelerator",
}


def estimator_settings(args, estimator_class):
    """The keyword arguments of ``estimator_class`` given by the flags of the table.

    A flag of a parameter that ``estimator_class`` does not have (``--class_weight`` for
    S4Regressor) is a UsageError when it was given.
    """
    accepted = inspect.signature(estimator_class).parameters
    settings = {}
    for row in ESTIMATOR_FLAGS:
        value = getattr(args, row.dest)
        if row.parameter in accepted:
            settings[row.parameter] = value
        elif value != row.default_value:
            raise UsageError(f"--{row.dest} does not apply to {estimator_class.__name__}")
    return settings


def check_estimator_flags(args):
    """UsageError naming the flag whose value the estimator does not accept.

    Checked before any data are read or any file is written, with the estimator's own
    rules (:func:`s4learn.parameters.check_parameters`).
    """
    settings = estimator_settings(args, S4Classifier)
    try:
        check_parameters(S4Classifier(**settings))
    except InvalidParameterError as error:
        flags = {row.parameter: row.dest for row in ESTIMATOR_FLAGS}
        raise UsageError(f"--{flags.get(error.parameter, error.parameter)}: {error}") \
            from None


def parameter_descriptions(estimator_class):
    """``{name: (type, description)}`` of the Parameters section of a numpydoc docstring.

    An entry naming several parameters (``dt_min, dt_max : float``) gives each of them
    its type and description, which starts with the names ("dt_min, dt_max: ...").
    """
    doc = inspect.cleandoc(estimator_class.__doc__)
    section = doc.split("Parameters\n----------\n", 1)[1]
    section = re.split(r"\n\S[^\n]*\n-{3,}\n", section, maxsplit=1)[0]
    entries = {}
    for match in re.finditer(r"^(\w[\w, ]*) : ([^\n]*)\n((?:[ \t]+[^\n]*\n?|\n)*)",
                             section, re.MULTILINE):
        names, kind, description = match.groups()
        description = " ".join(description.split()).replace("``", "")
        if ", " in names:
            description = f"{names}: {description}"
        for name in names.split(", "):
            entries[name] = (kind, description)
    return entries


def _add_estimator_flags(group):
    descriptions = parameter_descriptions(S4Classifier)
    for row in ESTIMATOR_FLAGS:
        kind, description = descriptions[row.parameter]
        help_text = f"{description} {row.note}".strip().replace("%", "%%")
        if row.flag:
            help_text = f"{row.parameter}: {help_text}"
        options = {"default": row.default_value, "help": help_text}
        if isinstance(row.parse, Switch):
            options.update(action=_SwitchAction, values=row.parse.values)
        else:
            options["type"] = row.parse
            choices = re.match(r"\{(.*)\}", kind)
            if choices:
                options["choices"] = re.findall(r'"([^"]*)"', choices.group(1))
        group.add_argument(f"--{row.dest}", **options)


class _HelpFormatter(argparse.HelpFormatter):
    """Says each flag's default at the end of its help (not None, nor a plain switch's),
    and shows a switch's value on its ``--NAME`` form only."""

    def _format_action_invocation(self, action):
        if isinstance(action, _SwitchAction) and action.nargs == "?":
            on, off = action.option_strings
            return f"{on} [{action.metavar}], {off}"
        return super()._format_action_invocation(action)

    def _get_help_string(self, action):
        help_text = action.help or ""
        plain_switch = action.nargs == 0 and not isinstance(
            action, argparse.BooleanOptionalAction)
        if not ("%(default)" in help_text or action.default is None or plain_switch
                or action.default is argparse.SUPPRESS or not action.option_strings):
            help_text += " (default: %(default)s)"
        return help_text


# ---------------------------------------------------------------------------- parser
def build_parser():
    """The argument parser of ``s4learn`` with its ``train`` and ``predict`` commands."""
    parser = argparse.ArgumentParser(prog="s4learn", description=DESCRIPTION,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"s4learn {__version__}",
                        help="print the version of s4learn and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_arguments(commands.add_parser(
        "train", help="train a model and evaluate it on each split",
        formatter_class=_HelpFormatter))
    _add_predict_arguments(commands.add_parser(
        "predict", help="predict new data with a saved model",
        formatter_class=_HelpFormatter))
    return parser


def _add_train_arguments(parser):
    parser.set_defaults(check_arguments=lambda args: _check_finetune_arguments(parser, args))
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="digits, mnist, cifar10, ucr:NAME (a UCR/UEA archive data set, "
                           "with aeon) or a .csv/.parquet table")
    data.add_argument("--tabulardata", action="store_true",
                      help="state that --dataset (or --trainset) is a .csv/.parquet table "
                           "whose rows are sequences of their columns; an error otherwise")
    _add_data_source_arguments(data)
    data.add_argument("--grayscale", action="store_true", help="CIFAR-10 in grayscale")
    data.add_argument("--task", "--modeltype", choices=("classification", "regression"),
                      help="inferred from the target when omitted")
    data.add_argument("--dependent_variable", help="target column of a table")
    data.add_argument("--independent_variables", nargs="+", metavar="COLUMN",
                      help="feature columns (default: every other column)")
    data.add_argument("--trainvaltestsplit", nargs=3, type=float, default=(0.7, 0.1, 0.2),
                      metavar=("TRAIN", "VAL", "TEST"),
                      help="shares of the rows in each split, summing to 1; a data set "
                           "with its own test set (mnist, cifar10, ucr:) splits its "
                           "training set by the first two")
    data.add_argument("--trainset", metavar="TABLE", help="training table (instead of "
                                                            "--dataset)")
    data.add_argument("--valset", metavar="TABLE", help="validation table")
    data.add_argument("--testset", metavar="TABLE", help="test table")
    data.add_argument("--timeseriessplit", action="store_true",
                      help="split into contiguous blocks in file order, not at random")
    data.add_argument("--window", type=positive_int,
                      help="read each row as the sequence of the WINDOW rows ending at it; "
                           "the split is then by time, as with --timeseriessplit")
    _add_estimator_flags(parser.add_argument_group(
        "model and training", "parameters of S4Classifier / S4Regressor"))
    _add_finetune_arguments(parser.add_argument_group(
        "fine-tuning", "start from a model saved by 's4learn train'; its architecture "
        f"replaces --{', --'.join(ARCHITECTURE_OPTIONS)}"))
    output = parser.add_argument_group("output")
    _add_output_arguments(output)
    output.add_argument("--checkpoint_dir", default="s4learn_checkpoints",
                        help="folder of the last and best checkpoints")
    output.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint of --modelname (refused when "
                             "the options or the data files changed); its existing outputs "
                             "are replaced")
    output.add_argument("--quiet", action="store_true", help="print only the metrics")


def _add_data_source_arguments(group):
    group.add_argument("--data_root", default="data",
                       help="folder of the MNIST and CIFAR-10 files")
    group.add_argument("--download", action="store_true",
                       help="download MNIST / CIFAR-10 into --data_root when missing")


ALLOW_PICKLE_HELP = (
    "also read {what} saved as joblib/pickle files (by older versions or by hand). "
    "Loading a pickle runs whatever code the file names, so a crafted file can do "
    "anything you can: give this only for files you trust. Without it only .safetensors "
    "model files are read, which hold data and no code")


def _add_predict_arguments(parser):
    parser.add_argument("--model",
                        help="model file (default: OUTPUT_DIR/MODELNAME.safetensors)")
    parser.add_argument("--allow_pickle", action="store_true",
                        help=ALLOW_PICKLE_HELP.format(what="a --model"))
    parser.add_argument("--dataset", required=True,
                        help="a .csv/.parquet table, a .npy array of samples, or a data set "
                             "name as for train (digits: every image; mnist, cifar10, "
                             "ucr:NAME: the test set)")
    parser.add_argument("--independent_variables", nargs="+", metavar="COLUMN",
                        help="feature columns of a table (default: those the model was "
                             "trained on, or every column for a model not trained on a "
                             "table)")
    _add_data_source_arguments(parser)
    _add_output_arguments(parser)


def _add_output_arguments(parser):
    parser.add_argument("--modelname", default="s4model", help="name of every file written")
    parser.add_argument("--output_dir", default="s4learn_runs",
                        help="folder of the model and results")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="format of the results files")
    parser.add_argument("--output_data", action="store_true",
                        help="add the input features (of a table) to the results files")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")


def _add_finetune_arguments(group):
    lora, sdlora = LoRA(), SDLoRA()
    group.add_argument("--pretrained", metavar="MODEL",
                       help="model file (NAME.safetensors) written by 's4learn train' to "
                            "start from")
    group.add_argument("--allow_pickle", action="store_true",
                       help=ALLOW_PICKLE_HELP.format(what="a --pretrained model") +
                       "; checkpoints (--resume) are never read as pickles")
    group.add_argument("--finetune", choices=("full", "lora", "sdlora"),
                       help="full: train every parameter (default with --pretrained); "
                            "lora: LoRA adapters; sdlora: selective dimension tuning of "
                            "the SSM plus LoRA")
    group.add_argument("--ssm_method", choices=("full", "freeze", "lora", "sdlora"),
                       help=f"how the SSM parameters (dt, A, C) train (default: "
                            f"{lora.ssm_method} with lora, {sdlora.ssm_method} with sdlora)")
    group.add_argument("--lp_method", choices=("full", "freeze", "lora"),
                       help=f"how the linear projections train (default: {lora.lp_method})")
    group.add_argument("--D_method", choices=("full", "freeze"),
                       help=f"whether the skip parameters D train (default: "
                            f"{lora.D_method} with lora, {sdlora.D_method} with sdlora)")
    for dim, total in (("states", "of d_state/2"), ("channels", "of d_model")):
        group.add_argument(f"--select_{dim}_dim", type=_dimension, metavar="N",
                           help=f"sdlora: {dim} kept per "
                                f"{'channel' if dim == 'states' else 'layer'}, an int count "
                                f"{total} or a float share in (0, 1] (default: all)")
        group.add_argument(f"--updatable_{dim}_dim", type=_dimension, metavar="N",
                           help=f"sdlora: kept {dim} whose A and C train, a count or share "
                                f"(default: {getattr(sdlora, f'updatable_{dim}_dim')})")
    group.add_argument("--lora_rank", type=int,
                       help=f"rank of the LoRA adapters (default: {lora.lora_rank})")
    group.add_argument("--warmup_epochs", type=int,
                       help=f"sdlora: epochs of the warmup run that ranks the dimensions "
                            f"(default: {sdlora.warmup_epochs})")
    group.add_argument("--warmup_lr", type=float,
                       help=f"sdlora: learning rate of the warmup run "
                            f"(default: {sdlora.warmup_lr})")


def _check_finetune_arguments(parser, args):
    """parser.error on fine-tuning options that do not fit together; settles --finetune."""
    given = [name for name in METHOD_SETTINGS["sdlora"] if getattr(args, name) is not None]
    if args.pretrained is None:
        if args.finetune is not None:
            parser.error(f"--finetune {args.finetune} needs --pretrained MODEL (the model "
                         f"to fine-tune)")
        if given:
            parser.error(f"--{given[0]} is a fine-tuning setting: it needs --pretrained "
                         f"MODEL and --finetune lora or sdlora")
        return
    args.finetune = args.finetune or "full"
    args.ignored_options = [f"--{name}" for name in ARCHITECTURE_OPTIONS
                            if getattr(args, name) != parser.get_default(name)]
    for name in given:
        if name not in METHOD_SETTINGS[args.finetune]:
            if args.finetune == "full":
                parser.error(f"--{name} does not apply to --finetune full (full fine-tuning "
                             f"trains every parameter and has no settings); use --finetune "
                             f"lora or sdlora")
            parser.error(f"--{name} does not apply to --finetune {args.finetune}; it is a "
                         f"setting of --finetune sdlora")
    if args.finetune == "lora" and args.ssm_method == "sdlora":
        parser.error("--ssm_method sdlora needs --finetune sdlora")
    if args.finetune == "sdlora" and args.ssm_method not in (None, "sdlora"):
        selection = [name for name in given if name in SELECTION_SETTINGS]
        if selection:
            parser.error(f"--{selection[0]} applies only with --ssm_method sdlora (it sets "
                         f"the dimension selection), not with --ssm_method {args.ssm_method}")
