"""Optional dependencies, imported where a feature needs them."""

import importlib


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def import_extra(module, extra, feature):
    """Import ``module`` for ``feature``, or say which extra of s4learn installs it.

    Parameters
    ----------
    module : str
        Dotted name of the module, e.g. ``"torchvision.datasets"``.
    extra : str
        The optional dependency group of s4learn that installs it, e.g. ``"vision"``.
    feature : str
        What needs it, the start of the error message, e.g. ``"load_mnist"``.

    Returns
    -------
    module

    Raises
    ------
    MissingExtraError
        When the import fails, with a one-line message naming the extra.

    Examples
    --------
    >>> from s4learn.extras import import_extra
    >>> import_extra("json", "none", "the example").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(f'{feature} needs {package}: pip install "s4learn[{extra}]"'
                                ) from None
