"""
Saving and loading a fitted model
=================================

Fitted estimators pickle like any scikit-learn estimator: save one with
:func:`joblib.dump`, load it back with :func:`joblib.load`, and it predicts exactly as
before.
"""

import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits

from s4learn import S4Classifier

X, y = load_digits(return_X_y=True)
clf = S4Classifier(d_model=16, n_layers=1, d_state=16, max_epochs=5, min_steps=0,
                   random_state=0)
clf.fit(X, y)
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "digits.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
print("loaded model predicts identically:", loaded.predict(X[:10]))
