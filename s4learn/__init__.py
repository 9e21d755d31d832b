"""s4learn: scikit-learn estimators for S4 state-space sequence models."""

__version__ = "0.2.0"

__all__ = ["S4Classifier", "S4Regressor", "__version__", "load_model", "save_model"]

# where each public name lives; imported on first use, so that the command line can
# answer --help without loading torch
_PUBLIC = {"S4Classifier": "estimators", "S4Regressor": "estimators",
           "load_model": "persistence", "save_model": "persistence"}


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 's4learn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
