"""
Unequal-length series from aeon: JapaneseVowels
===============================================

aeon's ``load_classification`` returns JapaneseVowels (nine speakers saying a vowel, 12
cepstral coefficients per frame, 7 to 29 frames) as a list of ``(n_channels,
n_timepoints_i)`` arrays. :class:`~s4learn.S4Classifier` takes the list as it is: the
series keep their own lengths, padding inside a batch is masked in the network, and
``layout="NCL"`` states aeon's channels-first layout.

Needs the timeseries extra: ``pip install "s4learn[timeseries]"``.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from aeon.datasets import load_classification
from sklearn.metrics import ConfusionMatrixDisplay

from s4learn import S4Classifier

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

# %%
# The official train/test split, straight from aeon.
X_train, y_train = load_classification("JapaneseVowels", split="train")
X_test, y_test = load_classification("JapaneseVowels", split="test")
lengths = [x.shape[1] for x in X_train]
print(f"{len(X_train)} training series of {X_train[0].shape[0]} channels, "
      f"{min(lengths)} to {max(lengths)} steps")

# %%
# The defaults: per-channel scaling, step sizes from the longest series, a batch size
# and a number of epochs that give a small data set enough optimizer steps.
settings = dict(max_epochs=3) if QUICK else {}
clf = S4Classifier(layout="NCL", random_state=0, **settings)
clf.fit(X_train, y_train)
print(f"test accuracy {clf.score(X_test, y_test):.3f} after {clf.n_epochs_} epochs")

# %%
# A series predicted alone gets the same probabilities as inside the batch.
alone = clf.predict_proba(X_test[:1])
in_batch = clf.predict_proba(X_test)[:1]
print(f"largest difference alone vs in a batch: {np.abs(alone - in_batch).max():.1e}")

# %%
# Where the errors are.
fig, (lengths_ax, matrix_ax) = plt.subplots(1, 2, figsize=(10, 4))
lengths_ax.hist(lengths, bins=range(min(lengths), max(lengths) + 2))
lengths_ax.set(xlabel="steps", ylabel="training series", title="Series lengths")
ConfusionMatrixDisplay.from_estimator(clf, X_test, y_test, ax=matrix_ax, colorbar=False)
matrix_ax.set_title("Test confusion matrix (speakers)")
fig.tight_layout()
plt.show()
