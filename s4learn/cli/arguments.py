"""The ``s4learn`` argument parser: its commands, flags and their checks.

The flags that set estimator parameters come from the estimators' parameter table,
:data:`s4learn.parameters.PARAMETERS`: each parameter is a flag of its own name (unless
:data:`NOT_FLAGS` says why not), read by the parameter's own rules, with its description
as help; :func:`estimator_settings` builds the estimator's keyword arguments from the
flags given. Flags are written with underscores, as the parameters are; the spellings of
0.1 (``--train_val_test_split``, ``--no-bidirectional``) are kept as aliases.

Nothing here imports torch, so ``--help``, ``--version`` and argument errors answer at
once.
"""

import argparse
import re
from dataclasses import dataclass

from .. import __version__
from ..parameters import (
    LEGACY_RULES,
    PARAMETERS,
    InvalidParameterError,
    check_parameters,
    estimator_parameters,
    parse_flag,
)
from .errors import UsageError

DESCRIPTION = "The s4learn command: train an S4 model on a data set, or predict with one."
# settings of each --finetune method, named as the method's parameters (and the flags)
LORA_SETTINGS = ("lora_rank", "ssm_method", "lp_method", "D_method")
SELECTION_SETTINGS = ("select_channels_dim", "updatable_channels_dim", "select_states_dim",
                      "updatable_states_dim", "warmup_epochs", "warmup_lr")
METHOD_SETTINGS = {"full": (), "lora": LORA_SETTINGS,
                   "sdlora": LORA_SETTINGS + SELECTION_SETTINGS}
# options that the pretrained network's architecture replaces
ARCHITECTURE_OPTIONS = ("n_layers", "d_model", "d_state", "difference_channels",
                        "bidirectional", "init", "dt_min", "dt_max")
# the defaults of the fine-tuning methods' settings, as s4learn.peft's LoRA and SDLoRA
# have them (a test keeps them equal; importing peft would import torch)
LORA_DEFAULTS = {"lora_rank": 4, "ssm_method": "freeze", "lp_method": "lora",
                 "D_method": "freeze"}
SDLORA_DEFAULTS = {**LORA_DEFAULTS, "ssm_method": "sdlora", "D_method": "full",
                   "updatable_channels_dim": 0.25, "updatable_states_dim": 0.25,
                   "warmup_epochs": 1, "warmup_lr": 0.001}


# ------------------------------------------------------------------- parse functions
def positive_int(text):
    """An int >= 1."""
    value = _number(text, int, "an int")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def file_name(text):
    """A name for the files a command writes: not empty, not hidden, no folders in it."""
    if not text or text.startswith(".") or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(
            f"expected a file name without folders that does not start with '.', got "
            f"{text!r}")
    return text


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
    """The parse of an on/off flag; with ``values``, also ``--NAME VALUE``."""

    values: tuple = ()


SWITCH = Switch()


class _SwitchAction(argparse.Action):
    """``--NAME`` sets True and ``--no_NAME`` False; with ``values``, ``--NAME VALUE``
    sets the VALUE (``--differences log``)."""

    def __init__(self, option_strings, dest, values=(), **kwargs):
        super().__init__(option_strings, dest, nargs="?" if values else 0,
                         choices=values or None, metavar="|".join(values) or None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        negative = option_string.startswith(("--no_", "--no-"))
        if values is None or values == []:  # no value: on or off
            setattr(namespace, self.dest, not negative)
        elif negative:
            raise argparse.ArgumentError(self, f"{option_string} takes no value")
        else:
            setattr(namespace, self.dest, values)


SHOWN_FLAGS = {}  # destination -> the flag that sets it, as the help shows it


def add_flag(group, flag, *aliases, **options):
    """Add ``flag`` to ``group``, and each of ``aliases`` (old spellings) as a hidden flag
    of the same meaning; a default other than None or False is stated in the help."""
    options.setdefault("dest", flag[2:])
    SHOWN_FLAGS.setdefault(options["dest"], flag)
    shows_default = options.get("default") not in (None, False)
    if shows_default and "(default: " not in options.get("help", ""):
        options["help"] += " (default: %(default)s)"
    names = [flag]
    if options.get("action") is _SwitchAction:
        names.append(f"--no_{flag[2:]}")
        aliases += (f"--no-{flag[2:]}",)
    group.add_argument(*names, **options)
    for alias in aliases:
        group.add_argument(alias, **{**options, "help": argparse.SUPPRESS})


# flags named otherwise than their parameter (the first name is the one shown)
FLAG_NAMES = {"max_epochs": ("--max_epochs", "--epochs"),
              "random_state": ("--seed", "--random_state")}
# a fixed seed by default: the random split and a resumed run must repeat
FLAG_DEFAULTS = {"random_state": 0}
FLAG_NOTES = {
    "predict_batch_size": "Saved with the model: 's4learn predict' reads the data in "
                          "batches of this size.",
    "validation_fraction": "Used only when the data have no validation split.",
    "class_weight": "Classification only; 'none' weighs the classes equally.",
    "layout": "digits, mnist and cifar10 are read as images.",
    "random_state": "Also seeds the random split of the data.",
}
# estimator parameters without a flag, and why: a test checks that every parameter of
# the estimator has a flag or a row here
NOT_FLAGS = {
    "grayscale": "--grayscale converts CIFAR-10 as it is read",
    "verbose": "--quiet sets it",
    "callbacks": "Python objects; the command adds its checkpoint callback",
    "warm_start": "each run trains anew or resumes with --resume",
    "pretrained": "--pretrained",
    "finetune": "--finetune and its settings",
    "accelerator": "a Python object, one per process; scripts pass an accelerate.Accelerator",
}
# the flags of 0.1's parameters (see s4learn.parameters.DEPRECATED): hidden, passed on
DEPRECATED_FLAGS = {"differences": Switch(values=("log",)), "prenorm": SWITCH,
                    "compile": SWITCH, "norm": str, "pool": str, "input_type": str,
                    "image_layout": str, "sequence_layout": str, "min_steps": int,
                    "num_workers": int}
DEPRECATED_DEST = "deprecated_"  # prefix of their destinations
ROLE = re.compile(r":\w+:`~?([^`]*)`")  # a Sphinx cross-reference, shown as its target


def estimator_flags():
    """The parameters that have a flag, in the order of the parameter table."""
    return [name for name in PARAMETERS if name not in NOT_FLAGS]


def flag_of(name):
    """The flag that sets parameter (or destination) ``name``, as the help shows it."""
    if name in FLAG_NAMES:
        return FLAG_NAMES[name][0]
    return SHOWN_FLAGS.get(name, f"--{name}")


def _flag_type(name):
    def parse(text):
        try:
            return parse_flag(name, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = name  # argparse names it in its messages
    return parse


def _add_estimator_flags(group):
    for name in estimator_flags():
        row = PARAMETERS[name]
        doc = ROLE.sub(r"\1", " ".join(row.doc.split()).replace("``", ""))
        help_text = f"{doc} {FLAG_NOTES.get(name, '')}".strip()
        if name in FLAG_NAMES:
            help_text = f"{name}: {help_text}"
        default = FLAG_DEFAULTS.get(name)
        if name not in FLAG_DEFAULTS:
            help_text += f" (default: {_default_text(row)})"
        options = {"dest": name, "default": default, "help": help_text.replace("%", "%%"),
                   "metavar": flag_of(name)[2:].upper()}
        if [rule.description for rule in row.rules] == ["a bool"]:
            options.update(action=_SwitchAction)
            del options["metavar"]
        else:
            options["type"] = _flag_type(name)
            choices = [choice for rule in row.rules for choice in rule.choices]
            if choices and len(row.rules) == 1:
                options.update(choices=choices, type=str, metavar=None)
        add_flag(group, *FLAG_NAMES.get(name, (f"--{name}",)), **options)
    for name, parse in DEPRECATED_FLAGS.items():
        options = {"dest": DEPRECATED_DEST + name, "default": None,
                   "help": argparse.SUPPRESS}
        if isinstance(parse, Switch):
            options.update(action=_SwitchAction, values=parse.values)
        else:
            options["type"] = parse
        add_flag(group, f"--{name}", **options)


def _default_text(row):
    """The default as the parameter's type line states it (``default=...``)."""
    return row.kind.rsplit("default=", 1)[-1]


def estimator_settings(args, classifier=True):
    """The keyword arguments of the classifier (or regressor) that the flags give.

    Flags not given are left out, so the estimator's own defaults apply. A flag of a
    parameter the estimator lacks (``--class_weight`` for S4Regressor) is a UsageError.
    The hidden flags of 0.1's parameters are passed on under their old names, for the
    estimator to translate with a FutureWarning.
    """
    accepted = set(estimator_parameters(classifier))
    settings = {}
    for name in estimator_flags():
        value = getattr(args, name)
        if value is None and name not in FLAG_DEFAULTS:
            continue
        if name not in accepted:
            raise UsageError(f"{flag_of(name)} does not apply to "
                             f"{'S4Classifier' if classifier else 'S4Regressor'}")
        settings[name] = value
    for name in DEPRECATED_FLAGS:
        value = getattr(args, DEPRECATED_DEST + name)
        if value is not None:
            settings[name] = value
    return settings


def check_estimator_flags(args, classifier=True):
    """UsageError naming the flag whose value the estimator does not accept.

    Checked before any data are read or any file is written, with the estimator's own
    rules (:func:`s4learn.parameters.check_parameters`), so the command and the Python
    API accept and refuse the same values with the same words.
    """
    settings = {name: value for name, value in estimator_settings(args, classifier).items()
                if name in PARAMETERS or name in LEGACY_RULES}
    try:
        check_parameters(settings)
    except InvalidParameterError as error:
        raise UsageError(f"{flag_of(error.parameter)}: {error}") from None


# ---------------------------------------------------------------------------- parser
def build_parser():
    """The argument parser of ``s4learn`` with its ``train`` and ``predict`` commands."""
    parser = argparse.ArgumentParser(prog="s4learn", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"s4learn {__version__}",
                        help="print the version of s4learn and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_arguments(commands.add_parser(
        "train", help="train a model and evaluate it on each split"))
    _add_predict_arguments(commands.add_parser(
        "predict", help="predict new data with a saved model"))
    return parser


def command_parser(command):
    """The parser of one command, ``"train"`` or ``"predict"``, on its own."""
    parser = argparse.ArgumentParser(prog=f"s4learn {command}")
    {"train": _add_train_arguments, "predict": _add_predict_arguments}[command](parser)
    return parser


def _add_train_arguments(parser):
    parser.set_defaults(check_arguments=lambda args: _check_finetune_arguments(parser, args))
    data = parser.add_argument_group("data")
    add_flag(data, "--dataset", default="digits",
                      help="digits, mnist, cifar10, ucr:NAME (a UCR/UEA archive data set, "
                           "with aeon) or a .csv/.parquet table")
    add_flag(data, "--tabular_data", "--tabulardata", dest="tabulardata",
             action="store_true",
                      help="state that --dataset (or --train_set) is a .csv/.parquet table "
                           "whose rows are sequences of their columns; an error otherwise")
    _add_data_source_arguments(data)
    add_flag(data, "--grayscale", action="store_true", help="CIFAR-10 in grayscale")
    add_flag(data, "--task", "--modeltype", choices=("classification", "regression"),
                      help="inferred from the target when omitted")
    add_flag(data, "--dependent_variable", help="target column of a table")
    add_flag(data, "--independent_variables", nargs="+", metavar="COLUMN",
                      help="feature columns (default: every other column)")
    add_flag(data, "--train_val_test_split", "--trainvaltestsplit", dest="trainvaltestsplit",
             nargs=3, type=float, default=(0.7, 0.1, 0.2),
                      metavar=("TRAIN", "VAL", "TEST"),
                      help="shares of the rows in each split, summing to 1; a data set "
                           "with its own test set (mnist, cifar10, ucr:) splits its "
                           "training set by the first two")
    add_flag(data, "--train_set", "--trainset", dest="trainset",
             metavar="TABLE",
                      help="training table (instead of "
                                                            "--dataset)")
    add_flag(data, "--val_set", "--valset", dest="valset",
             metavar="TABLE",
                      help="validation table")
    add_flag(data, "--test_set", "--testset", dest="testset",
             metavar="TABLE",
                      help="test table")
    add_flag(data, "--time_series_split", "--timeseriessplit", dest="timeseriessplit",
             action="store_true",
                      help="split into contiguous blocks in file order, not at random")
    add_flag(data, "--window", type=positive_int,
                      help="read each row as the sequence of the WINDOW rows ending at it; "
                           "the split is then by time, as with --timeseriessplit")
    _add_estimator_flags(parser.add_argument_group(
        "model and training", "parameters of S4Classifier / S4Regressor"))
    _add_finetune_arguments(parser.add_argument_group(
        "fine-tuning", "start from a model saved by 's4learn train'; its architecture "
        f"replaces --{', --'.join(ARCHITECTURE_OPTIONS)}"))
    output = parser.add_argument_group("output")
    _add_output_arguments(output)
    add_flag(output, "--checkpoint_dir", default="s4learn_checkpoints",
                        help="folder of the last and best checkpoints")
    add_flag(output, "--resume", action="store_true",
                        help="continue from the last checkpoint of --model_name (refused when "
                             "the options or the data files changed); its existing outputs "
                             "are replaced")
    add_flag(output, "--quiet", action="store_true", help="print only the metrics")


def _add_data_source_arguments(group):
    add_flag(group, "--data_root", default="data",
                       help="folder of the MNIST and CIFAR-10 files")
    add_flag(group, "--download", action="store_true",
                       help="download MNIST / CIFAR-10 into --data_root when missing")


ALLOW_PICKLE_HELP = (
    "also read {what} saved as joblib/pickle files (by older versions or by hand). "
    "Loading a pickle runs whatever code the file names, so a crafted file can do "
    "anything you can: give this only for files you trust. Without it only .safetensors "
    "model files are read, which hold data and no code")


def _add_predict_arguments(parser):
    add_flag(parser, "--model",
                        help="model file (default: OUTPUT_DIR/MODELNAME.safetensors)")
    add_flag(parser, "--allow_pickle", action="store_true",
                        help=ALLOW_PICKLE_HELP.format(what="a --model"))
    add_flag(parser, "--dataset", required=True,
                        help="a .csv/.parquet table, a .npy array of samples, or a data set "
                             "name as for train (digits: every image; mnist, cifar10, "
                             "ucr:NAME: the test set)")
    add_flag(parser, "--independent_variables", nargs="+", metavar="COLUMN",
                        help="feature columns of a table (default: those the model was "
                             "trained on, or every column for a model not trained on a "
                             "table)")
    _add_data_source_arguments(parser)
    _add_output_arguments(parser)


def _add_output_arguments(parser):
    add_flag(parser, "--model_name", "--modelname", dest="modelname", type=file_name,
             default="s4model",
                        metavar="NAME",
                        help="name of every file written")
    add_flag(parser, "--output_dir", default="s4learn_runs",
                        help="folder of the model and results")
    add_flag(parser, "--format", choices=("csv", "parquet"), default="csv",
                        help="format of the results files")
    add_flag(parser, "--output_data", action="store_true",
                        help="add the input features (of a table) to the results files")
    add_flag(parser, "--overwrite", action="store_true",
                        help="replace existing output files")


def _add_finetune_arguments(group):
    lora, sdlora = _Defaults(LORA_DEFAULTS), _Defaults(SDLORA_DEFAULTS)
    add_flag(group, "--pretrained", metavar="MODEL",
                       help="model file (NAME.safetensors) written by 's4learn train' to "
                            "start from")
    add_flag(group, "--allow_pickle", action="store_true",
                       help=ALLOW_PICKLE_HELP.format(what="a --pretrained model") +
                       "; checkpoints (--resume) are never read as pickles")
    add_flag(group, "--finetune", choices=("full", "lora", "sdlora"),
                       help="full: train every parameter (default with --pretrained); "
                            "lora: LoRA adapters; sdlora: selective dimension tuning of "
                            "the SSM plus LoRA")
    add_flag(group, "--ssm_method", choices=("full", "freeze", "lora", "sdlora"),
                       help=f"how the SSM parameters (dt, A, C) train (default: "
                            f"{lora.ssm_method} with lora, {sdlora.ssm_method} with sdlora)")
    add_flag(group, "--lp_method", choices=("full", "freeze", "lora"),
                       help=f"how the linear projections train (default: {lora.lp_method})")
    add_flag(group, "--D_method", choices=("full", "freeze"),
                       help=f"whether the skip parameters D train (default: "
                            f"{lora.D_method} with lora, {sdlora.D_method} with sdlora)")
    for dim, total in (("states", "of d_state/2"), ("channels", "of d_model")):
        add_flag(group, f"--select_{dim}_dim", type=_dimension, metavar="N",
                           help=f"sdlora: {dim} kept per "
                                f"{'channel' if dim == 'states' else 'layer'}, an int count "
                                f"{total} or a float share in (0, 1] (default: all)")
        add_flag(group, f"--updatable_{dim}_dim", type=_dimension, metavar="N",
                           help=f"sdlora: kept {dim} whose A and C train, a count or share "
                                f"(default: {getattr(sdlora, f'updatable_{dim}_dim')})")
    add_flag(group, "--lora_rank", type=int,
                       help=f"rank of the LoRA adapters (default: {lora.lora_rank})")
    add_flag(group, "--warmup_epochs", type=int,
                       help=f"sdlora: epochs of the warmup run that ranks the dimensions "
                            f"(default: {sdlora.warmup_epochs})")
    add_flag(group, "--warmup_lr", type=float,
                       help=f"sdlora: learning rate of the warmup run "
                            f"(default: {sdlora.warmup_lr})")


class _Defaults:
    """A method's default settings read as attributes (``lora.lora_rank``)."""

    def __init__(self, settings):
        self.__dict__.update(settings)


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
                            if getattr(args, name) is not None]
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
