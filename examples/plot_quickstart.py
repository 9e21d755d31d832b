"""
Quickstart: digits as pixel sequences
=====================================

Classify scikit-learn's 8x8 handwritten digits with :class:`~s4learn.S4Classifier`,
reading each image as a sequence of its 64 pixels. A held-out validation set, passed to
``fit``, gives the validation loss and accuracy of every epoch; the fitted estimator
exposes them as ``loss_curve_``, ``validation_loss_curve_`` and ``validation_scores_``.
"""

import os

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier
from s4learn.plotting import plot_learning_curves

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

# %%
# Train on 60% of the digits, validate on 10% and test on 30%. Each digit is read as a
# sequence of 64 pixels; the example sets the range of initial step sizes
# ``dt_min``/``dt_max`` itself: memories from about 100 steps down to one.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=1 / 7,
                                                  stratify=y_train, random_state=0)
clf = S4Classifier(d_model=32, n_layers=2, d_state=16, max_epochs=4 if QUICK else "auto",
                   bidirectional=True, dt_min=0.01, dt_max=1.0, random_state=0)
clf.fit(X_train, y_train, validation_data=(X_val, y_val))
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")
print(f"lowest validation loss {clf.best_loss_:.3f} after {clf.n_epochs_} epochs")

# %%
# Training curves
# ---------------
# The losses fall together while the learning rate decays (cosine schedule); the
# validation accuracy is on the right-hand axis.
fig, ax = plt.subplots(figsize=(6, 4))
plot_learning_curves(clf, ax=ax)
ax.set_title("S4Classifier on digits")
fig.tight_layout()

# %%
# Confusion matrix on the test set
# --------------------------------
ConfusionMatrixDisplay.from_estimator(clf, X_test, y_test, colorbar=False)
plt.title("Test digits: true class against predicted class")
plt.show()
