"""Figures of fitted estimators; needs matplotlib (``pip install "s4learn[plot]"``)."""

from .extras import import_extra


def plot_learning_curves(estimator, ax=None):
    """Draw the training and validation loss of each epoch, and the validation score.

    The losses come from ``estimator.loss_curve_`` and ``validation_loss_curve_``; the
    validation score (accuracy or R2, ``validation_scores_``) goes on a second y axis
    on the right when ``fit`` had validation data.

    Parameters
    ----------
    estimator : S4Classifier or S4Regressor
        A fitted estimator.
    ax : matplotlib Axes, default=None
        Where to draw; None draws on the current Axes of ``matplotlib.pyplot``.

    Returns
    -------
    ax : matplotlib Axes
        The Axes of the losses.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    losses = estimator.loss_curve_  # raises NotFittedError before plotting anything
    ax = plt.gca() if ax is None else ax
    epochs = range(1, len(losses) + 1)
    ax.plot(epochs, losses, label="training loss")
    if estimator.validation_loss_curve_ is not None:
        ax.plot(epochs, _as_floats(estimator.validation_loss_curve_),
                label="validation loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    if estimator.validation_scores_ is not None:
        score_ax = ax.twinx()
        score_name = "accuracy" if hasattr(estimator, "classes_") else "R2"
        score_ax.plot(epochs, _as_floats(estimator.validation_scores_), color="C2",
                      label=f"validation {score_name}")
        score_ax.set_ylabel(f"validation {score_name}")
        more_handles, more_labels = score_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="center right")
    return ax


def _as_floats(values):
    """None (an epoch without validation data) becomes NaN, a gap in the line."""
    return [float("nan") if value is None else value for value in values]


def _pyplot():
    return import_extra("matplotlib.pyplot", "plot", "s4learn.plotting")
