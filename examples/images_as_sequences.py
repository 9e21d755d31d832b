"""
Images as pixel sequences
=========================

Sequential MNIST style: a 4-D ``uint8`` image array goes into
:class:`~s4learn.S4Classifier` as it is. Each image becomes the sequence of its pixels
in row-major order (``H * W`` steps of ``C`` channels), scaled to [0, 1].
"""

import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

digits = load_digits()
images = (digits.images * 15).astype(np.uint8)[..., None]  # (n, 8, 8, 1), like MNIST
X_train, X_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.3,
                                                    stratify=digits.target, random_state=0)
clf = S4Classifier(d_model=32, n_layers=2, d_state=16, max_epochs=3 if QUICK else "auto",
                   bidirectional=True, dt_min=0.01, dt_max=1.0, random_state=0)
clf.fit(X_train, y_train)  # each image becomes 64 steps of 1 channel, scaled to [0, 1]
print("sequence shape per sample:", clf.input_shape_, "->", (8 * 8, 1))
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")
