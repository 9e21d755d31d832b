"""
A DataFrame pipeline tuned with GridSearchCV
============================================

:class:`~s4learn.S4Classifier` is a scikit-learn estimator: it takes a DataFrame (each
row is a sequence of its columns), sits at the end of a
:class:`~sklearn.pipeline.Pipeline` and is tuned by
:class:`~sklearn.model_selection.GridSearchCV` like any other.
"""

import os

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s4learn import S4Classifier

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

digits = load_digits(as_frame=True)
X, y = digits.data, digits.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
scale = ColumnTransformer([("scale", StandardScaler(), list(X.columns))])
pipe = make_pipeline(scale, S4Classifier(n_layers=1, d_state=16,
                                         max_epochs=2 if QUICK else "auto", bidirectional=True,
                                         dt_min=0.01, dt_max=1.0, random_state=0))

# %%
# Two widths and two learning rates, two-fold cross-validation on the training data,
# two fits at a time in separate processes.
grid = {"s4classifier__d_model": [16, 32], "s4classifier__lr": [0.01, 0.03]}
search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"test accuracy: {search.score(X_test, y_test):.3f}")
assert isinstance(X_test, pd.DataFrame)
