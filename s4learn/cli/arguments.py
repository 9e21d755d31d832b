"""The ``s4learn`` argument parser: its commands, flags and their checks."""

import argparse

from ..peft import LoRA, SDLoRA

DESCRIPTION = "The s4learn command: train an S4 model on a data set, or predict with one."
# settings of each --finetune method, named as the method's parameters (and the flags)
LORA_SETTINGS = ("lora_rank", "ssm_method", "lp_method", "D_method")
SELECTION_SETTINGS = ("select_channels_dim", "updatable_channels_dim", "select_states_dim",
                      "updatable_states_dim", "warmup_epochs", "warmup_lr")
METHOD_SETTINGS = {"full": (), "lora": LORA_SETTINGS,
                   "sdlora": LORA_SETTINGS + SELECTION_SETTINGS}
# options that the pretrained network's architecture replaces
ARCHITECTURE_OPTIONS = ("n_layers", "d_model", "d_state", "prenorm")


def build_parser():
    """The argument parser of ``s4learn`` with its ``train`` and ``predict`` commands."""
    parser = argparse.ArgumentParser(prog="s4learn", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_arguments(commands.add_parser(
        "train", help="train a model and evaluate it on each split"))
    _add_predict_arguments(commands.add_parser(
        "predict", help="predict a table with a saved model"))
    return parser


def _add_train_arguments(parser):
    parser.set_defaults(check_arguments=lambda args: _check_finetune_arguments(parser, args))
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="digits (default), mnist, cifar10, or a .csv/.parquet file")
    data.add_argument("--data_root", default="data",
                      help="folder of the MNIST / CIFAR-10 files (default: ./data)")
    data.add_argument("--download", action="store_true",
                      help="download MNIST / CIFAR-10 into --data_root when missing")
    data.add_argument("--task", choices=("classification", "regression"),
                      help="inferred from the target when omitted")
    data.add_argument("--dependent_variable", help="target column of a table")
    data.add_argument("--independent_variables", nargs="+",
                      help="feature columns (default: every other column)")
    data.add_argument("--trainvaltestsplit", nargs=3, type=float, default=(0.7, 0.1, 0.2),
                      metavar=("TRAIN", "VAL", "TEST"),
                      help="shares of the rows in each split, summing to 1")
    data.add_argument("--trainset", help="training table (instead of --dataset)")
    data.add_argument("--valset", help="validation table")
    data.add_argument("--testset", help="test table")
    data.add_argument("--timeseriessplit", action="store_true",
                      help="split into contiguous blocks in file order, not at random")
    data.add_argument("--window", type=int,
                      help="read each row as the sequence of the WINDOW rows ending at it")
    data.add_argument("--grayscale", action="store_true", help="CIFAR-10 in grayscale")
    model = parser.add_argument_group("model and training")
    model.add_argument("--epochs", type=int, default=60, help="max_epochs (default 60)")
    model.add_argument("--lr", type=float, default=0.01)
    model.add_argument("--weight_decay", type=float, default=0.01)
    model.add_argument("--batch_size", type=int, default=64)
    model.add_argument("--num_workers", type=int, default=0)
    model.add_argument("--n_layers", type=int, default=4)
    model.add_argument("--d_model", type=int, default=64)
    model.add_argument("--d_state", type=int, default=64)
    model.add_argument("--dropout", type=float, default=0.1)
    model.add_argument("--prenorm", action="store_true")
    model.add_argument("--patience", type=int, help="early stopping on the validation loss")
    model.add_argument("--device", default="auto")
    model.add_argument("--seed", type=int, default=0, help="random_state and split seed")
    _add_finetune_arguments(parser.add_argument_group(
        "fine-tuning", "start from a model saved by 's4learn train'; its architecture "
        "replaces --n_layers, --d_model, --d_state and --prenorm"))
    output = parser.add_argument_group("output")
    _add_output_arguments(output)
    output.add_argument("--checkpoint_dir", default="s4learn_checkpoints",
                        help="folder of the last and best checkpoints")
    output.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint of --modelname")
    output.add_argument("--quiet", action="store_true", help="print only the metrics")


def _add_finetune_arguments(group):
    lora, sdlora = LoRA(), SDLoRA()
    group.add_argument("--pretrained", metavar="MODEL",
                       help="model file (NAME.joblib) written by 's4learn train' to start from")
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


def _add_predict_arguments(parser):
    parser.add_argument("--model", help="model file (default: OUTPUT_DIR/MODELNAME.joblib)")
    parser.add_argument("--dataset", required=True, help=".csv or .parquet table")
    parser.add_argument("--independent_variables", nargs="+",
                        help="feature columns (default: those the model was trained on)")
    _add_output_arguments(parser)


def _add_output_arguments(parser):
    parser.add_argument("--modelname", default="s4model",
                        help="name of every file written (default: s4model)")
    parser.add_argument("--output_dir", default="s4learn_runs",
                        help="folder of the model and results (default: ./s4learn_runs)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="format of the results files")
    parser.add_argument("--output_data", action="store_true",
                        help="add the input features to the results files")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
