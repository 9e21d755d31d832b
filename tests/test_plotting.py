"""s4learn.plotting draws the estimator's curves (Agg backend, no display)."""

import sys

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from s4learn import S4Classifier
from s4learn.plotting import plot_learning_curves


@pytest.fixture(scope="module")
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def test_lines_hold_the_estimator_curves(plt, validated_classifier):
    clf = validated_classifier
    figure, ax = plt.subplots()
    assert plot_learning_curves(clf, ax=ax) is ax
    train, valid = ax.get_lines()
    np.testing.assert_array_equal(train.get_ydata(), clf.loss_curve_)
    np.testing.assert_array_equal(valid.get_ydata(), clf.validation_loss_curve_)
    (score,) = figure.axes[1].get_lines()
    np.testing.assert_array_equal(score.get_ydata(), clf.validation_scores_)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "training loss", "validation loss", "validation accuracy"]
    plt.close(figure)


def test_without_validation_only_the_training_loss_is_drawn(plt, unvalidated_classifier):
    clf = unvalidated_classifier
    figure, ax = plt.subplots()
    plot_learning_curves(clf, ax=ax)
    assert len(ax.get_lines()) == 1 and len(figure.axes) == 1
    plt.close(figure)


def test_unfitted_estimator_raises_not_fitted(plt):
    with pytest.raises(NotFittedError):
        plot_learning_curves(S4Classifier())


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "s4learn\[plot\]"'):
        plot_learning_curves(S4Classifier())
