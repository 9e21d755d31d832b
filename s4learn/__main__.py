"""``python -m s4learn``: the command line, as :func:`s4learn.cli.main`."""

import sys

from .cli import main

sys.exit(main())
