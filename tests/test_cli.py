"""The s4learn command line: train, predict, bad input and resuming after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from s4learn.checkpoints import load_checkpoint
from s4learn.cli import main

TINY = ["--epochs", "2", "--d_model", "8", "--n_layers", "1", "--d_state", "8"]


@pytest.fixture
def table(tmp_path):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.randn(120, 3), columns=["temp", "wind", "rain"])
    frame["label"] = np.where(frame["temp"] + frame["wind"] > 0, "warm", "cold")
    frame["load"] = 2 * frame["temp"] - frame["rain"]
    path = tmp_path / "weather.csv"
    frame.to_csv(path, index=False)
    return path


def run(tmp_path, *args):
    """Run ``s4learn`` in ``tmp_path``; return the exit status."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return main([str(arg) for arg in args])
    finally:
        os.chdir(cwd)


def test_classification_with_string_labels(tmp_path, table, capsys):
    status = run(tmp_path, "train", "--dataset", table, "--dependent_variable", "label",
                 "--independent_variables", "temp", "wind", "--output_data", *TINY)
    assert status == 0
    out = capsys.readouterr().out
    assert "Task inferred from the target: classification" in out
    runs = tmp_path / "s4learn_runs"
    metrics = json.loads((runs / "s4model_metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["n_epochs"] == 2
    assert set(metrics["test"]) == {"accuracy", "f1_macro"}
    results = {split: pd.read_csv(runs / f"s4model_{split}_results.csv")
               for split in ("train", "val", "test")}
    assert list(results["test"].columns) == ["row_id", "y_true", "y_pred", "proba_cold",
                                             "proba_warm", "temp", "wind"]
    row_ids = np.concatenate([frame["row_id"] for frame in results.values()])
    assert sorted(row_ids) == list(range(120))
    assert [len(frame) for frame in results.values()] == [84, 12, 24]
    source = pd.read_csv(table)
    test = results["test"]
    assert (source.loc[test["row_id"], "label"].to_numpy() == test["y_true"]).all()
    assert (tmp_path / "s4learn_checkpoints" / "s4model_best.joblib").is_file()


def test_predict_equals_the_saved_model(tmp_path, table, capsys):
    assert run(tmp_path, "train", "--dataset", table, "--dependent_variable", "label",
               *TINY) == 0
    assert run(tmp_path, "predict", "--dataset", table) == 0
    assert "s4model_predictions.csv" in capsys.readouterr().out
    predictions = pd.read_csv(tmp_path / "s4learn_runs" / "s4model_predictions.csv")
    model = joblib.load(tmp_path / "s4learn_runs" / "s4model.joblib")
    features = pd.read_csv(table)[["temp", "wind", "rain", "load"]]
    assert (predictions["y_pred"] == model.predict(features)).all()
    np.testing.assert_allclose(predictions[["proba_cold", "proba_warm"]],
                               model.predict_proba(features))


def test_regression_with_windows_and_time_order(tmp_path, table, capsys):
    status = run(tmp_path, "train", "--dataset", table, "--dependent_variable", "load",
                 "--independent_variables", "temp", "rain", "--window", "5",
                 "--timeseriessplit", "--modelname", "windows", "--format", "parquet",
                 *TINY)
    assert status == 0
    assert "regression" in capsys.readouterr().out
    runs = tmp_path / "s4learn_runs"
    metrics = json.loads((runs / "windows_metrics.json").read_text())
    assert set(metrics["val"]) == {"rmse", "mae", "r2"}
    train = pd.read_parquet(runs / "windows_train_results.parquet")
    test = pd.read_parquet(runs / "windows_test_results.parquet")
    assert train["row_id"].tolist() == list(range(84))
    assert test["row_id"].tolist() == list(range(96, 120))
    model = joblib.load(runs / "windows.joblib")
    frame = pd.read_csv(table)[["temp", "rain"]]
    assert model.predict(frame).shape == (120,)
    assert run(tmp_path, "predict", "--dataset", table, "--modelname", "windows") == 0


def test_separate_files(tmp_path, table):
    frame = pd.read_csv(table)
    frame[:80].to_csv(tmp_path / "train.csv", index=False)
    frame[80:].to_parquet(tmp_path / "test.parquet")
    status = run(tmp_path, "train", "--trainset", "train.csv", "--testset", "test.parquet",
                 "--dependent_variable", "load", "--independent_variables", "temp", "rain",
                 "--task", "regression", *TINY)
    assert status == 0
    metrics = json.loads((tmp_path / "s4learn_runs" / "s4model_metrics.json").read_text())
    assert set(metrics) == {"task", "n_epochs", "train", "test"}


BAD_TRAIN_INPUTS = [
    (["--dataset", "missing.csv", "--dependent_variable", "label"], "no such file"),
    (["--dependent_variable", "lable"], "did you mean 'label'"),
    (["--dependent_variable", "label", "--independent_variables", "tmp"],
     "did you mean 'temp'"),
    (["--dependent_variable", "load", "--independent_variables", "temp", "label"],
     "feature column 'label' is not numeric"),
    (["--dependent_variable", "label", "--trainvaltestsplit", "0.7", "0.2", "0.2"],
     "must sum to 1"),
    (["--dependent_variable", "gap", "--independent_variables", "temp"], "target column 'gap' has 1 missing value"),
    (["--dataset", "mnsit"], "unknown dataset 'mnsit'"),
    (["--dataset", "mnist", "--data_root", "nowhere"], "MNIST not found"),
    (["--dependent_variable", "label", "--resume"], "no checkpoint"),
]


@pytest.mark.parametrize("arguments, message", BAD_TRAIN_INPUTS)
def test_bad_train_input(tmp_path, table, capsys, arguments, message):
    frame = pd.read_csv(table)
    frame["gap"] = frame["load"].where(frame.index != 7)
    frame.to_csv(table, index=False)
    if "--dataset" not in arguments:
        arguments = ["--dataset", table, *arguments]
    before = set(tmp_path.iterdir())
    assert run(tmp_path, "train", *arguments, *TINY) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert set(tmp_path.iterdir()) == before


def test_existing_outputs_are_kept(tmp_path, table, capsys):
    arguments = ["train", "--dataset", table, "--dependent_variable", "label", *TINY]
    assert run(tmp_path, *arguments) == 0
    model = tmp_path / "s4learn_runs" / "s4model.joblib"
    written = model.stat().st_mtime_ns
    assert run(tmp_path, *arguments) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert model.stat().st_mtime_ns == written
    assert run(tmp_path, *arguments, "--overwrite") == 0


@pytest.mark.parametrize("content, message", [(None, "not found"),
                                              (b"garbage", "damaged")])
def test_bad_model_file(tmp_path, table, capsys, content, message):
    model = tmp_path / "model.joblib"
    if content is not None:
        model.write_bytes(content)
    assert run(tmp_path, "predict", "--model", model, "--dataset", table) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s4learn_runs").exists()


def test_kill_and_resume(tmp_path, table):
    epochs = 5
    command = [sys.executable, "-m", "s4learn", "train", "--dataset", table,
               "--dependent_variable", "label", "--independent_variables", "temp", "wind",
               "rain", "--epochs", str(epochs), "--d_model", "8", "--n_layers", "1",
               "--d_state", "8", "--batch_size", "8", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    last = tmp_path / "s4learn_checkpoints" / "s4model_last.joblib"
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists()
    assert load_checkpoint(last)["epoch"] < epochs
    assert not (tmp_path / "s4learn_runs").exists()
    resumed = subprocess.run(command + ["--resume"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((tmp_path / "s4learn_runs" / "s4model_metrics.json").read_text())
    assert metrics["n_epochs"] == epochs
    best = load_checkpoint(tmp_path / "s4learn_checkpoints" / "s4model_best.joblib")
    assert 1 <= best["epoch"] <= epochs and len(best["net"].history) == best["epoch"]
