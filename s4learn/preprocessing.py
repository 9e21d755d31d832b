"""Turn a time-ordered table into sequences the S4 estimators read."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class SequenceWindows(TransformerMixin, BaseEstimator):
    """Each row becomes the sequence of the ``window`` rows ending at it.

    A table of shape ``(n_rows, n_features)`` whose rows are in time order becomes
    ``(n_rows, window, n_features)``: sample ``i`` holds rows ``i - window + 1`` to ``i``,
    one step per row and one channel per feature, so the target of row ``i`` stays
    aligned with sample ``i``. The first ``window - 1`` rows have too little history;
    their windows are padded at the front with copies of the first row (``padding="edge"``)
    or with zeros (``padding="zeros"``). The row count never changes, so the transformer
    works inside a :class:`~sklearn.pipeline.Pipeline`, which passes ``y`` unchanged::

        make_pipeline(SequenceWindows(24), S4Regressor())

    Use :func:`drop_padded` to leave out the padded samples instead.

    Parameters
    ----------
    window : int, default=16
        Number of rows in each sequence.
    padding : {"edge", "zeros"}, default="edge"
        How the missing history of the first ``window - 1`` rows is filled.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit``.
    """

    def __init__(self, window=16, padding="edge"):
        self.window = window
        self.padding = padding

    def fit(self, X, y=None):
        """Check the parameters and record the columns of ``X``."""
        self._check_parameters()
        validate_data(self, X, reset=True, dtype="numeric", ensure_all_finite="allow-nan")
        return self

    def transform(self, X):
        """Windows of shape (n_rows, window, n_features), float64."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype="numeric",
                          ensure_all_finite="allow-nan")
        pad = np.zeros_like(X[:1]) if self.padding == "zeros" else X[:1]
        padded = np.concatenate([np.repeat(pad, self.window - 1, axis=0), X])
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.window, axis=0)
        return np.ascontiguousarray(windows.transpose(0, 2, 1))

    def _check_parameters(self):
        if not isinstance(self.window, (int, np.integer)) or self.window < 1:
            raise ValueError(f"window must be a positive int, got {self.window!r}")
        if self.padding not in ("edge", "zeros"):
            raise ValueError(f"padding must be 'edge' or 'zeros', got {self.padding!r}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def drop_padded(X_windows, y, window):
    """Leave out the first ``window - 1`` samples, whose windows are padded.

    Parameters
    ----------
    X_windows : ndarray of shape (n_rows, window, n_features)
        Output of :meth:`SequenceWindows.transform`.
    y : array-like of shape (n_rows, ...)
        Targets aligned with the rows of the table.
    window : int
        The window length used.

    Returns
    -------
    X_windows, y : the samples with a full history and their targets.
    """
    start = min(window - 1, len(X_windows))
    return X_windows[start:], np.asarray(y)[start:]
