"""The ``s4learn`` command: train an S4 model on a data set, or predict with one.

``s4learn train`` fits :class:`S4Classifier` or :class:`S4Regressor` on digits, MNIST,
CIFAR-10 or a ``.csv`` / ``.parquet`` table (from scratch, or by fine-tuning a model saved
by an earlier run) and writes the model, metrics and per-split results;
``s4learn predict`` applies a saved model to new data. See ``docs/cli.md``.

The package is laid out by responsibility: :mod:`.arguments` (the parser and its flags),
:mod:`.data` (reading and splitting data), :mod:`.training` (the ``train`` command,
checkpoints and resume), :mod:`.prediction` (the ``predict`` command) and
:mod:`.outputs` (results, metrics and the report).
"""

import importlib
import sys

from ..extras import MissingExtraError
from .arguments import build_parser
from .errors import UsageError

# each command's module, imported once the arguments are read: torch loads only then
COMMANDS = {"train": ("training", "train"), "predict": ("prediction", "predict")}

__all__ = ["build_parser", "main"]


def main(argv=None):
    """Run the ``s4learn`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad input or a missing optional dependency.
    """
    args = build_parser().parse_args(argv)
    check_arguments = getattr(args, "check_arguments", None)
    if check_arguments is not None:
        check_arguments(args)  # parser.error (exit status 2) on a bad combination
    module, function = COMMANDS[args.command]
    command = getattr(importlib.import_module(f".{module}", __name__), function)
    try:
        return command(args)
    except (UsageError, FileNotFoundError, MissingExtraError) as error:
        print(f"s4learn: error: {error}", file=sys.stderr)
        return 2
