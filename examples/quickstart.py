"""Quickstart: classify scikit-learn's handwritten digits as 64-step pixel sequences."""

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
clf = S4Classifier(d_model=32, n_layers=2, max_epochs=20, bidirectional=True, dt_min=0.01,
                   dt_max=1.0, random_state=0, verbose=1)
clf.fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")
