"""s4learn: scikit-learn estimators for S4 state-space sequence models."""

from .estimators import S4Classifier, S4Regressor
from .persistence import load_model, save_model

__version__ = "0.1.0"

__all__ = ["S4Classifier", "S4Regressor", "__version__", "load_model", "save_model"]
