"""
Saving and loading a fitted model
=================================

:func:`s4learn.save_model` writes a fitted estimator to one ``.safetensors`` file: the
network's weights as tensors and everything else (parameters, fitted attributes, the
training history) as a JSON record. :func:`s4learn.load_model` reads it back without
running any code from the file, which a pickle (``joblib.dump``) cannot promise, and the
loaded model predicts exactly as the saved one did.
"""

import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from s4learn import S4Classifier, load_model, save_model

X, y = load_digits(return_X_y=True)
clf = S4Classifier(d_model=16, n_layers=1, d_state=16, max_epochs=5, random_state=0)
clf.fit(X, y)
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "digits.safetensors"
    save_model(clf, path)
    loaded = load_model(path)
np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
print("loaded model predicts identically:", loaded.predict(X[:10]))
