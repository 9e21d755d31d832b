"""Fits whose predictions are recorded, so that any change of behaviour is deliberate.

``python tests/recorded_fits.py`` rewrites ``tests/data/recorded_predictions.npz``;
``tests/test_recorded.py`` reruns the same fits and compares. Each fit uses only
settings that mean the same in every version since 0.1.0, so a change in any
prediction is a change of behaviour: one made on purpose is recorded again, with the
reason in the change log. ``tests/data/model_0.1.0.safetensors`` is a model file
written by version 0.1.0 and its predictions then (``model_file_0.1.0``); neither is
ever rewritten.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits

from s4learn import S4Classifier, S4Regressor
from s4learn.export import export_program
from s4learn.peft import LoRA
from s4learn.streaming import StreamingPredictor

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "recorded_predictions.npz"
OLD_MODEL = DATA / "model_0.1.0.safetensors"
OLD_MODEL_KEY = "model_file_0.1.0"  # its predictions of the regressor_table case's X
SMALL = {"d_model": 8, "n_layers": 1, "d_state": 8, "max_epochs": 3,
         "device": "cpu", "random_state": 0}


def sequences(n=48, length=16, channels=2, seed=0):
    X = np.random.RandomState(seed).randn(n, length, channels).astype(np.float32)
    return X, (X[:, :, 0].mean(axis=1) > 0).astype(int)


def unequal_sequences(n=40, seed=1):
    rng = np.random.RandomState(seed)
    X = [rng.randn(rng.randint(6, 20), 2) for _ in range(n)]
    return X, np.array([int(x[:, 1].sum() > 0) for x in X])


def fit_cases():
    """``{name: fitted estimator or pipeline, X to predict}`` of every recorded case."""
    X, y = sequences()
    ragged, ragged_y = unequal_sequences()
    digits = load_digits()
    images = (digits.images[:120] * 16).astype(np.uint8)[..., None]
    table = pd.DataFrame(np.random.RandomState(2).randn(60, 6) * [1, 10, 100, 1, 1, 1],
                         columns=[f"c{i}" for i in range(6)])
    classifier = S4Classifier(**SMALL).fit(X, y)
    return {
        "classifier_equal": (classifier, X[:10]),
        "classifier_unequal": (S4Classifier(**SMALL).fit(ragged, ragged_y), ragged[:10]),
        "regressor_table": (S4Regressor(**SMALL).fit(table, table.sum(axis=1)), table[:10]),
        "classifier_images": (S4Classifier(**SMALL).fit(images, digits.target[:120]),
                              images[:10]),
        "finetuned_lora": (S4Classifier(pretrained=classifier, finetune=LoRA(), **SMALL)
                           .fit(X[::-1].copy(), y[::-1]), X[:10]),
    }


def predictions(model, X):
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    return model.predict(X)


def streamed(classifier, X):
    stream = StreamingPredictor(classifier).reset(n_streams=len(X))
    return stream.update(X)


def exported(classifier, X):
    program = export_program(classifier, X.shape[1])
    with torch.no_grad():
        return program.module()(torch.as_tensor(X)).numpy()


def record():
    torch.set_num_threads(1)
    cases = fit_cases()
    recorded = {name: predictions(model, X) for name, (model, X) in cases.items()}
    classifier, X = cases["classifier_equal"]
    recorded["streamed"] = streamed(classifier, X[:4])
    recorded["exported"] = exported(classifier, X[:4])
    with np.load(RECORDED) as previous:
        recorded[OLD_MODEL_KEY] = previous[OLD_MODEL_KEY]
    np.savez(RECORDED, **recorded)


if __name__ == "__main__":
    record()
