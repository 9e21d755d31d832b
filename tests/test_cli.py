"""The s4learn command line: train, predict, fine-tune, bad input, resuming after a kill."""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from test_datasets import write_mnist

import s4learn
from s4learn import S4Classifier, load_model
from s4learn.checkpoints import EpochCheckpoint, load_checkpoint
from s4learn.cli import build_parser, main
from s4learn.cli.arguments import (
    LORA_DEFAULTS,
    NOT_FLAGS,
    SDLORA_DEFAULTS,
    check_estimator_flags,
    command_parser,
    estimator_flags,
    estimator_settings,
)
from s4learn.cli.errors import UsageError
from s4learn.cli.training import finetune_method
from s4learn.datasets import load_digits_images, load_ucr
from s4learn.parameters import PARAMETERS
from s4learn.peft import AdaptedS4DKernel, LoRA, LoRALinear, SDLoRA

TINY = ["--epochs", "2", "--d_model", "8", "--n_layers", "1",
        "--d_state", "8"]


def write_table(folder):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.randn(120, 3), columns=["temp", "wind", "rain"])
    frame["label"] = np.where(frame["temp"] + frame["wind"] > 0, "warm", "cold")
    frame["load"] = 2 * frame["temp"] - frame["rain"]
    path = folder / "weather.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def table(tmp_path):
    return write_table(tmp_path)


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
    assert (tmp_path / "s4learn_checkpoints" / "s4model_best.pt").is_file()


def test_predict_equals_the_saved_model(tmp_path, table, capsys):
    assert run(tmp_path, "train", "--dataset", table, "--dependent_variable", "label",
               *TINY) == 0
    assert run(tmp_path, "predict", "--dataset", table) == 0
    assert "s4model_predictions.csv" in capsys.readouterr().out
    predictions = pd.read_csv(tmp_path / "s4learn_runs" / "s4model_predictions.csv")
    model = load_model(tmp_path / "s4learn_runs" / "s4model.safetensors")
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
    model = load_model(runs / "windows.safetensors")
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
    assert set(metrics) == {"task", "n_epochs", "n_params", "n_trainable_params", "train",
                            "test"}
    model = load_model(tmp_path / "s4learn_runs" / "s4model.safetensors")
    assert metrics["n_params"] == metrics["n_trainable_params"] == model.n_params_
    assert model.n_params_ == sum(p.numel() for p in model.net_.module_.parameters())


BAD_TRAIN_INPUTS = [
    (["--dataset", "missing.csv", "--dependent_variable", "label"], "no such file"),
    (["--dependent_variable", "lable"], "did you mean 'label'"),
    (["--dependent_variable", "label", "--independent_variables", "tmp"],
     "did you mean 'temp'"),
    (["--dependent_variable", "load", "--independent_variables", "temp", "label"],
     "feature column 'label' is not numeric"),
    (["--dependent_variable", "label", "--trainvaltestsplit", "0.7", "0.2", "0.2"],
     "must sum to 1"),
    (["--dependent_variable", "gap", "--independent_variables", "temp"],
     "target column 'gap' has 1 missing value"),
    (["--dataset", "mnsit"], "unknown dataset 'mnsit'"),
    (["--dataset", "mnist", "--data_root", "nowhere"], "MNIST not found"),
    (["--dependent_variable", "label", "--resume"], "no checkpoint"),
    (["--dataset", "digits", "--tabulardata"], "--tabulardata applies to tables"),
    (["--dependent_variable", "load", "--independent_variables", "temp", "--class_weight",
      "balanced"],
     "--class_weight does not apply to S4Regressor"),
    (["--dependent_variable", "label", "--independent_variables", "temp", "--patience", "2",
      "--validation_fraction", "1.5"],
     "--validation_fraction: validation_fraction must be a float in (0, 1), got 1.5"),
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
    model = tmp_path / "s4learn_runs" / "s4model.safetensors"
    written = model.stat().st_mtime_ns
    assert run(tmp_path, *arguments) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert model.stat().st_mtime_ns == written
    assert run(tmp_path, *arguments, "--overwrite") == 0


@pytest.mark.parametrize("content, message", [(None, "not found"),
                                              (b"garbage", "is not an s4learn model file")])
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
    last = tmp_path / "s4learn_checkpoints" / "s4model_last.pt"
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
    best = load_checkpoint(tmp_path / "s4learn_checkpoints" / "s4model_best.pt")
    assert 1 <= best["epoch"] <= epochs and len(best["net"]["history"]) == best["epoch"]


def test_resume_with_other_settings_is_refused(tmp_path, table, capsys):
    arguments = ["train", "--dataset", table, "--dependent_variable", "label", *TINY]
    assert run(tmp_path, *arguments, "--quiet") == 0
    model = tmp_path / "s4learn_runs" / "s4model.safetensors"
    saved = model.read_bytes()
    capsys.readouterr()
    changed = [*arguments, "--lr", "0.5", "--seed", "3", "--resume", "--overwrite"]
    assert run(tmp_path, *changed) == 2
    err = capsys.readouterr().err
    assert err.startswith("s4learn: error: --resume: s4learn_checkpoints/s4model_last.pt "
                          "was written by a run with --lr (not given) (now 0.5), --seed 0 "
                          "(now 3);")
    assert model.read_bytes() == saved
    # --quiet, --overwrite and --device do not change the result: resuming is allowed
    assert run(tmp_path, *arguments, "--device", "cpu", "--resume", "--overwrite") == 0
    assert "Resuming from s4learn_checkpoints/s4model_last.pt after epoch 2" in \
        capsys.readouterr().out


# ------------------------------------------------------------------------ fine-tuning
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The weather table and a tiny classifier of its label saved by ``s4learn train``."""
    folder = tmp_path_factory.mktemp("pretrained")
    table = write_table(folder)
    assert run(folder, "train", "--dataset", table, "--dependent_variable", "label",
               "--modelname", "base", "--quiet", *TINY) == 0
    return table, folder / "s4learn_runs" / "base.safetensors"


def finetune_arguments(table, base, *settings):
    return ["train", "--dataset", table, "--dependent_variable", "label", "--pretrained",
            base, "--finetune", "sdlora", *settings, "--epochs", "2"]


def has_adapters(estimator):
    return any(isinstance(module, (LoRALinear, AdaptedS4DKernel))
               for module in estimator.net_.module_.modules())


def test_finetune_sdlora_counts_merges_and_predicts(tmp_path, pretrained, capsys):
    table, base_path = pretrained
    arguments = finetune_arguments(table, base_path, "--updatable_channels_dim", "2",
                                   "--lora_rank", "2")
    assert run(tmp_path, *arguments, "--modelname", "tuned") == 0
    out = capsys.readouterr().out
    runs = tmp_path / "s4learn_runs"
    metrics = json.loads((runs / "tuned_metrics.json").read_text())
    # d_model H = 8, d_state 8 (N/2 = 4 states), 1 input channel read with its differences
    # and their log view, the same 2 classes (so the pretrained head is kept). Trainable:
    # LoRA of rank 2 on the encoder (3 -> H) and on the output projection (H -> 2H); every
    # dt; A (real and imaginary part) and C (real and imaginary part) of 2 channels x
    # ceil(0.25 * 4) = 1 state; D; the head, which reads 4 statistics of 2 taps (the
    # layer's output and the block's features) of H channels.
    H, rank = 8, 2
    encoder, output_linear = rank * 3 + H * rank, rank * H + 2 * H * rank
    kernel = H + 2 * 1 + 2 * 1 + 2 * 1 * 2
    expected = encoder + kernel + H + output_linear + (4 * 2 * H * 2 + 2)
    assert expected == 224 and metrics["n_trainable_params"] == expected
    base = load_model(base_path)
    assert metrics["n_params"] == sum(p.numel() for p in base.net_.module_.parameters())
    assert metrics["n_params"] == 466 and metrics["n_trainable_params"] < metrics["n_params"]
    assert metrics["finetune"] == "sdlora" and metrics["pretrained"] == str(base_path)
    assert "trainable parameters: 224 of 466 (48.1%)" in out
    tuned = load_model(runs / "tuned.safetensors")
    # only the settings given reach the method; "2" is parsed as the count 2
    method = finetune_method(build_parser().parse_args([str(a) for a in arguments]))
    assert method.get_params() == {**SDLoRA().get_params(), "updatable_channels_dim": 2,
                                   "lora_rank": 2}
    assert type(method.updatable_channels_dim) is int
    assert tuned.pretrained == str(base_path)
    assert not has_adapters(tuned)  # merged before saving
    network, base_network = tuned.net_.module_, base.net_.module_
    assert torch.equal(network.norms[0].weight, base_network.norms[0].weight)  # frozen
    assert not torch.equal(network.encoder.weight, base_network.encoder.weight)  # LoRA
    assert run(tmp_path, "predict", "--dataset", table, "--modelname", "tuned") == 0
    predictions = pd.read_csv(runs / "tuned_predictions.csv")
    features = pd.read_csv(table)[["temp", "wind", "rain", "load"]]
    assert (predictions["y_pred"] == tuned.predict(features)).all()
    np.testing.assert_allclose(predictions[["proba_cold", "proba_warm"]],
                               tuned.predict_proba(features))


def test_finetune_a_windowed_model(tmp_path, table):
    """A --window model is a Pipeline; its estimator is fine-tuned, with --window again."""
    data = ["--dataset", table, "--dependent_variable", "load", "--independent_variables",
            "temp", "rain", "--window", "3", "--quiet"]
    assert run(tmp_path, "train", *data, "--modelname", "base", *TINY) == 0
    base_path = tmp_path / "s4learn_runs" / "base.safetensors"
    assert run(tmp_path, "train", *data, "--modelname", "tuned", "--pretrained", base_path,
               "--finetune", "lora", "--lora_rank", "1", "--epochs", "2") == 0
    tuned = load_model(tmp_path / "s4learn_runs" / "tuned.safetensors")
    assert tuned[-1].pretrained == str(base_path) and not has_adapters(tuned[-1])
    # LoRA with rank 1 on encoder (2 channels, their differences and the differences' log
    # view -> 8) and output projection (8 -> 16), and the head (4 statistics of 2 taps)
    assert tuned[-1].n_trainable_params_ == (2 * 3 + 8) + (8 + 16) + (4 * 2 * 8 + 1)
    assert run(tmp_path, "predict", "--dataset", table, "--modelname", "tuned") == 0
    predictions = pd.read_csv(tmp_path / "s4learn_runs" / "tuned_predictions.csv")
    frame = pd.read_csv(table)[["temp", "rain"]]
    np.testing.assert_allclose(predictions["y_pred"], tuned.predict(frame))


def test_dimensions_parse_as_counts_or_shares():
    args = build_parser().parse_args(
        ["train", "--pretrained", "base.joblib", "--finetune", "sdlora",
         "--select_states_dim", "8", "--updatable_states_dim", "0.25",
         "--select_channels_dim", "1.0"])
    assert type(args.select_states_dim) is int and args.select_states_dim == 8
    assert type(args.updatable_states_dim) is float and args.updatable_states_dim == 0.25
    assert type(args.select_channels_dim) is float and args.select_channels_dim == 1.0
    assert args.updatable_channels_dim is None and args.lora_rank is None  # not given


FINETUNE_PARSER_ERRORS = [
    (["--finetune", "lora"], "--finetune lora needs --pretrained"),
    (["--lora_rank", "2"], "--lora_rank is a fine-tuning setting: it needs --pretrained"),
    (["--pretrained", "base.joblib", "--finetune", "lora", "--select_states_dim", "2"],
     "--select_states_dim does not apply to --finetune lora"),
    (["--pretrained", "base.joblib", "--lora_rank", "2"],
     "--lora_rank does not apply to --finetune full"),
    (["--pretrained", "base.joblib", "--finetune", "full", "--warmup_lr", "0.01"],
     "--warmup_lr does not apply to --finetune full"),
    (["--pretrained", "base.joblib", "--finetune", "lora", "--ssm_method", "sdlora"],
     "--ssm_method sdlora needs --finetune sdlora"),
    (["--pretrained", "base.joblib", "--finetune", "sdlora", "--ssm_method", "lora",
      "--updatable_states_dim", "2"], "--updatable_states_dim applies only with "
                                      "--ssm_method sdlora"),
    (["--pretrained", "base.joblib", "--finetune", "sdlora", "--updatable_states_dim",
      "1.5"], "argument --updatable_states_dim: a share must be a float in (0, 1]"),
    (["--pretrained", "base.joblib", "--finetune", "sdlora", "--select_channels_dim",
      "many"], "argument --select_channels_dim: 'many' is neither an int count nor a "
                 "float share"),
]


@pytest.mark.parametrize("arguments, message", FINETUNE_PARSER_ERRORS)
def test_finetune_parser_errors(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "train", *arguments)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: s4learn train" in err and f"s4learn train: error: {message}" in err
    assert list(tmp_path.iterdir()) == []


FINETUNE_VALUE_ERRORS = [
    (["--select_channels_dim", "2", "--updatable_channels_dim", "4"],
     "updatable_channels_dim (4) must not exceed select_channels_dim (2)"),
    (["--updatable_states_dim", "5"], "updatable_states_dim must be between 0 and 4"),
    (["--lora_rank", "0"], "lora_rank must be a positive int, got 0"),
    (["--warmup_epochs", "0"], "warmup_epochs must be a positive int, got 0"),
    (["--window", "2"], "reads 1 input channels per step, but X has 4"),
]


@pytest.mark.parametrize("settings, message", FINETUNE_VALUE_ERRORS)
def test_bad_finetune_values_are_errors(tmp_path, pretrained, capsys, settings, message):
    table, base_path = pretrained
    assert run(tmp_path, *finetune_arguments(table, base_path, *settings), "--quiet") == 2
    err = capsys.readouterr().err
    prefix = f"s4learn: error: cannot fine-tune {base_path}: "
    assert err.startswith(prefix) and message in err[len(prefix):]
    assert err.count("\n") == 1 and err.endswith("\n")  # one line
    assert list(tmp_path.iterdir()) == []  # no model, results or checkpoints


@pytest.mark.parametrize("content, message", [
    (None, "pretrained model file missing.joblib not found"),
    (b"garbage", "missing.joblib is not an s4learn model file"),
    ({"net": None}, "missing.joblib is not an s4learn model file"),
])
def test_bad_pretrained_file(tmp_path, table, capsys, content, message):
    if isinstance(content, bytes):
        (tmp_path / "missing.joblib").write_bytes(content)
    elif content is not None:
        joblib.dump(content, tmp_path / "missing.joblib")
    status = run(tmp_path, "train", "--dataset", table, "--dependent_variable", "label",
                 "--pretrained", "missing.joblib", *TINY)
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s4learn_runs").exists()


class Interrupted(Exception):
    """Stands for a kill right after a checkpoint was written."""


def test_resumed_finetuning_equals_uninterrupted(tmp_path, pretrained, monkeypatch):
    table, base_path = pretrained
    arguments = [*finetune_arguments(table, base_path, "--updatable_channels_dim", "2",
                                     "--lora_rank", "2"), "--epochs", "3", "--quiet"]
    assert run(tmp_path, *arguments, "--modelname", "whole") == 0
    save_checkpoint = EpochCheckpoint.on_epoch_end

    def save_and_stop(self, net, **kwargs):
        save_checkpoint(self, net, **kwargs)
        if len(net.history) == 2:
            raise Interrupted

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", save_and_stop)
    with pytest.raises(Interrupted):
        run(tmp_path, *arguments, "--modelname", "cut")
    monkeypatch.undo()
    runs = tmp_path / "s4learn_runs"
    assert load_checkpoint(tmp_path / "s4learn_checkpoints" / "cut_last.pt")["epoch"] == 2
    assert not (runs / "cut.safetensors").exists()
    assert run(tmp_path, *arguments, "--modelname", "cut", "--resume") == 0
    whole, cut = (json.loads((runs / f"{name}_metrics.json").read_text())
                  for name in ("whole", "cut"))
    assert cut["n_epochs"] == 3
    assert cut == whole  # parameter counts and scores included
    whole, cut = (load_model(runs / f"{name}.safetensors") for name in ("whole", "cut"))
    assert not has_adapters(cut)
    assert cut.n_trainable_params_ == whole.n_trainable_params_ == 224
    features = pd.read_csv(table)[["temp", "wind", "rain", "load"]]
    np.testing.assert_allclose(cut.predict_proba(features), whole.predict_proba(features),
                               atol=1e-5)


# ------------------------------------------------------------------ the flag table
def train_parser():
    return command_parser("train"), command_parser("predict")


def test_every_estimator_parameter_is_a_flag_or_left_out_on_purpose():
    flags = estimator_flags()
    assert set(flags) | set(NOT_FLAGS) == set(S4Classifier().get_params())
    assert not set(flags) & set(NOT_FLAGS)


def test_flag_help_comes_from_the_parameter_table():
    train, _ = train_parser()
    text = train.format_help()
    words = " ".join(text.split())
    defaults = train.parse_args([])
    for name in estimator_flags():
        assert " ".join(PARAMETERS[name].doc.split())[:40].replace("``", "") in words, name
        assert getattr(defaults, name) == (0 if name == "random_state" else None), name
    assert "--init {lin,inv,legs}" in text
    assert "--d_model D_MODEL     Width of the S4D layers." in text
    assert "--bidirectional, --no_bidirectional" in text
    assert "--max_epochs MAX_EPOCHS" in text and "--epochs" not in text  # aliases hidden


def test_the_fine_tuning_defaults_in_the_help_are_the_methods_own():
    assert {name: LoRA().get_params()[name] for name in LORA_DEFAULTS} == LORA_DEFAULTS
    assert {name: SDLoRA().get_params()[name] for name in SDLORA_DEFAULTS} == SDLORA_DEFAULTS


def test_every_flag_has_help():
    for parser in train_parser():
        entries = re.split(r"\n  (?=-)", parser.format_help().split("options:", 1)[1])
        for entry in entries[1:]:
            invocation, _, help_text = re.sub(r"\s+", " ", entry).partition("  ")
            assert help_text.strip() or re.search(r" \S+$", invocation.strip()), entry


def test_estimator_keywords_are_built_from_the_flags():
    args = build_parser().parse_args(
        ["train", "--dt_min", "0.01", "--dt_max", "0.5", "--bidirectional", "--init", "lin",
         "--class_weight", "balanced", "--weight_decay", "0", "--patience", "3",
         "--validation_fraction", "0.2", "--layout", "NCHW", "--epochs", "7",
         "--seed", "5", "--batch_size", "auto"])
    given = {"dt_min": 0.01, "dt_max": 0.5, "bidirectional": True, "init": "lin",
             "class_weight": "balanced", "weight_decay": 0.0, "patience": 3,
             "validation_fraction": 0.2, "layout": "NCHW", "max_epochs": 7,
             "random_state": 5, "batch_size": "auto"}
    assert estimator_settings(args) == given  # the flags not given are left out
    assert S4Classifier(**given).get_params()["dt_max"] == 0.5
    # S4Regressor has no class_weight: left out unless the flag was given
    args = build_parser().parse_args(["train", "--epochs", "3"])
    assert "class_weight" not in estimator_settings(args, classifier=False)
    args.class_weight = "balanced"
    with pytest.raises(UsageError, match="--class_weight does not apply to S4Regressor"):
        estimator_settings(args, classifier=False)


def test_flags_of_0_1_are_aliases_or_passed_on_to_be_translated(capsys):
    def parse(*flags):
        return build_parser().parse_args(["train", *flags])
    assert parse("--trainvaltestsplit", "0.5", "0.2", "0.3").trainvaltestsplit == \
        parse("--train_val_test_split", "0.5", "0.2", "0.3").trainvaltestsplit
    assert parse("--no-bidirectional").bidirectional is False
    settings = estimator_settings(parse("--differences", "log", "--min_steps", "0"))
    assert settings == {"random_state": 0, "differences": "log", "min_steps": 0}
    with pytest.warns(FutureWarning) as caught:
        assert S4Classifier(**settings).difference_channels == "log"
    assert "differences was renamed difference_channels" in str(caught[0].message)
    assert "min_steps is deprecated" in str(caught[1].message)
    with pytest.raises(SystemExit) as exit_info:
        parse("--no-differences", "log")
    assert exit_info.value.code == 2
    assert "--no-differences takes no value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("--help")
    assert "--min_steps" not in capsys.readouterr().out  # deprecated flags are hidden


def test_help_and_version_answer_without_importing_torch():
    code = ("import sys; from s4learn.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--difference_channels" in result.stdout


def test_flag_values_are_read_and_checked_by_the_parameter_rules(capsys):
    for flags, message in [(["--batch_size", "2.5"], "expected a positive int or 'auto', got "
                                                     "'2.5'"),
                           (["--dt_min", "x"], "expected a positive float or 'auto', got "
                                               "'x'")]:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", *flags])
        assert message in capsys.readouterr().err
    args = build_parser().parse_args(["train", "--batch_size", "0"])
    with pytest.raises(UsageError, match="--batch_size: batch_size must be a positive int or "
                                         "'auto', got 0"):
        check_estimator_flags(args)


def test_flag_values_are_typed_by_the_parser_and_ranged_by_the_estimator(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "train", "--epochs", "many")
    assert exit_info.value.code == 2
    assert "argument --epochs: expected a positive int or 'auto', got 'many'" in \
        capsys.readouterr().err
    assert run(tmp_path, "train", "--epochs", "0") == 2
    assert capsys.readouterr().err == ("s4learn: error: --max_epochs: max_epochs must be a "
                                       "positive int or 'auto', got 0\n")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"s4learn {s4learn.__version__}\n"


# --------------------------------------------------------- quiet, windows, tabulardata
def test_quiet_tabulardata_run_prints_only_the_metrics(tmp_path, table, capsys):
    status = run(tmp_path, "train", "--dataset", table, "--tabulardata", "--modeltype",
                 "classification", "--dependent_variable", "label", "--quiet", *TINY)
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["train", "val", "test", "Model"]
    metrics = json.loads((tmp_path / "s4learn_runs" / "s4model_metrics.json").read_text())
    assert metrics["task"] == "classification"
    assert run(tmp_path, "train", "--dataset", table, "--dependent_variable", "label",
               "--overwrite", "--quiet", *TINY) == 0
    assert "Task inferred" not in capsys.readouterr().out


def test_window_splits_by_time(tmp_path, table, capsys):
    data = ["--dataset", table, "--dependent_variable", "load", "--independent_variables",
            "temp", "rain", "--window", "4", *TINY]
    assert run(tmp_path, "train", *data, "--modelname", "implied") == 0
    assert "Note: --window splits the rows by time" in capsys.readouterr().out
    assert run(tmp_path, "train", *data, "--modelname", "given", "--timeseriessplit",
               "--quiet") == 0
    assert "Note" not in capsys.readouterr().out
    runs = tmp_path / "s4learn_runs"
    test = pd.read_csv(runs / "implied_test_results.csv")
    assert test["row_id"].tolist() == list(range(96, 120))
    implied, given = (json.loads((runs / f"{name}_metrics.json").read_text())
                      for name in ("implied", "given"))
    assert implied == given


# -------------------------------------------------------- predict with every model
@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    assert run(folder, "train", "--dataset", "digits", "--quiet", *TINY) == 0
    return folder, load_model(folder / "s4learn_runs" / "s4model.safetensors")


def predictions(folder, name="s4model"):
    return pd.read_csv(folder / "s4learn_runs" / f"{name}_predictions.csv")


def test_predict_digits_by_name_array_and_pixel_table(digits_model, capsys):
    folder, model = digits_model
    images, labels = load_digits_images()
    expected = model.predict_proba(images)
    assert run(folder, "predict", "--dataset", "digits", "--overwrite") == 0
    named = predictions(folder)
    assert named["row_id"].tolist() == list(range(1797))
    assert (named["y_true"] == labels).all()
    assert (named["y_pred"] == model.predict(images)).all()
    np.testing.assert_allclose(named[[f"proba_{k}" for k in range(10)]], expected)
    np.save(folder / "digits_new.npy", images[:50])
    np.save(folder / "digits_float.npy", images[:50].astype(np.float32))
    table = pd.DataFrame(images.reshape(1797, 64)[:50],
                         columns=[f"pixel{k}" for k in range(64)])
    table.to_csv(folder / "digits_new.csv", index=False)
    for source in ("digits_new.npy", "digits_float.npy", "digits_new.csv"):
        assert run(folder, "predict", "--dataset", source, "--overwrite") == 0, source
        result = predictions(folder)
        assert "y_true" not in result
        np.testing.assert_allclose(result[[f"proba_{k}" for k in range(10)]], expected[:50],
                                   atol=1e-6)
    assert "Predictions of 50 samples written" in capsys.readouterr().out


@pytest.mark.parametrize("source, message", [
    ("short.csv", "the model reads samples of shape (8, 8), 64 values in all, as table "
                  "columns in order; got 63 columns"),
    ("wide.npy", "the model reads samples of shape (8, 8); got 3 samples of shape (8, 9)"),
    ("bright.csv", "the model reads images, as pixel values from 0 to 255 (whole "
                   "numbers); got values from 0.0 to 300.0"),
    ("scaled.npy", "the model reads images, as pixel values from 0 to 255 (whole numbers); "
                   "got values from 0.0 to 0.5"),
    ("missing.npy", "missing.npy: no such file"),
    ("mnsit", "unknown dataset 'mnsit'"),
])
def test_predict_data_that_do_not_fit_the_model(digits_model, capsys, source, message):
    folder, _ = digits_model
    pd.DataFrame(np.zeros((3, 63))).to_csv(folder / "short.csv", index=False)
    np.save(folder / "wide.npy", np.zeros((3, 8, 9), dtype=np.uint8))
    bright = np.zeros((3, 64))
    bright[0, :2] = 0.5, 300
    pd.DataFrame(bright).to_csv(folder / "bright.csv", index=False)
    scaled = np.full((3, 8, 8), 0.5)  # pixels scaled to [0, 1]: refused, not misread
    scaled[0, 0, 0] = 0.0
    np.save(folder / "scaled.npy", scaled)
    assert run(folder, "predict", "--dataset", source, "--modelname", "s4model",
               "--overwrite") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_predict_mnist_test_set(tmp_path):
    arrays = write_mnist(tmp_path / "data", compress=False, n_train=10, n_test=4)
    assert run(tmp_path, "train", "--dataset", "mnist", "--quiet", *TINY) == 0
    assert run(tmp_path, "predict", "--dataset", "mnist") == 0
    model = load_model(tmp_path / "s4learn_runs" / "s4model.safetensors")
    images, labels = arrays["t10k"]
    result = predictions(tmp_path)
    assert (result["y_true"] == labels).all()
    assert (result["y_pred"] == model.predict(images)).all()


# ------------------------------------------------------------------ UCR/UEA archives
def test_train_and_predict_ucr_dataset(tmp_path, capsys):
    pytest.importorskip("aeon")
    assert run(tmp_path, "train", "--dataset", "ucr:ItalyPowerDemand", "--quiet",
               *TINY) == 0
    runs = tmp_path / "s4learn_runs"
    counts = {split: len(pd.read_csv(runs / f"s4model_{split}_results.csv"))
              for split in ("train", "val", "test")}
    assert counts == {"train": 59, "val": 8, "test": 1029}  # 67 training series, 7:1
    metrics = json.loads((runs / "s4model_metrics.json").read_text())
    assert metrics["task"] == "classification" and set(metrics["test"]) == {"accuracy",
                                                                             "f1_macro"}
    assert run(tmp_path, "predict", "--dataset", "ucr:ItalyPowerDemand") == 0
    model = load_model(runs / "s4model.safetensors")
    X_test, y_test = load_ucr("ItalyPowerDemand", split="test")
    result = predictions(tmp_path)
    assert (result["y_true"].astype(str) == y_test).all()
    assert (result["y_pred"].astype(str) == model.predict(X_test)).all()


def test_ucr_without_aeon_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)  # import fails
    assert run(tmp_path, "train", "--dataset", "ucr:GunPoint", *TINY) == 2
    err = capsys.readouterr().err
    assert err == ('s4learn: error: ucr:GunPoint: load_ucr needs aeon: pip install '
                   '"s4learn[timeseries]"\n')
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------- bad input: exit 2, no file left
def _one_class(tmp_path, table):
    frame = pd.read_csv(table)
    frame["label"] = "warm"
    frame.to_csv(table, index=False)


def _separate_validation_file(tmp_path, table):
    frame = pd.read_csv(table)
    frame[:90].to_csv(tmp_path / "train.csv", index=False)
    frame = frame[90:].copy()
    frame.loc[frame.index[0], "label"] = "foggy"
    frame.to_csv(tmp_path / "val.csv", index=False)


def _feature_value(value):
    def setup(tmp_path, table):
        frame = pd.read_csv(table)
        frame.loc[5, "temp"] = value
        frame.to_csv(table, index=False)
    return setup


def _checkpoint_without_net(tmp_path, table):
    (tmp_path / "s4learn_checkpoints").mkdir()
    torch.save({"epoch": 1, "settings": None}, tmp_path / "s4learn_checkpoints" /
               "s4model_last.pt")


def _test_file_without_a_feature(tmp_path, table):
    frame = pd.read_csv(table)
    frame[:90].to_csv(tmp_path / "train.csv", index=False)
    frame[90:].drop(columns="wind").to_csv(tmp_path / "test.csv", index=False)


def _predictions_folder(tmp_path, table):
    (tmp_path / "s4learn_runs" / "s4model_predictions.csv").mkdir(parents=True)


def _blocking_file(tmp_path, table):
    (tmp_path / "blocker").write_text("a file where a folder should be")


def _read_only_folder(tmp_path, table):
    if os.geteuid() == 0:
        pytest.skip("root writes in read-only folders")
    (tmp_path / "locked").mkdir(mode=0o555)


def _no_setup(tmp_path, table):
    pass


LABEL = ["--dependent_variable", "label"]
BAD_INPUTS = [  # command, arguments, setup, message
    ("train", [*LABEL, "--batch_size", "0"], _no_setup,
     "--batch_size: batch_size must be a positive int or 'auto', got 0"),
    ("train", [*LABEL, "--d_model", "0"], _no_setup,
     "--d_model: d_model must be a positive int, got 0"),
    ("train", [*LABEL, "--d_state", "7"], _no_setup,
     "--d_state: d_state must be an even int >= 2 (N/2 complex modes), got 7"),
    ("train", [*LABEL, "--dropout", "1.5"], _no_setup,
     "--dropout: dropout must be a float in [0, 1), got 1.5"),
    ("train", [*LABEL, "--lr", "-1"], _no_setup,
     "--lr: lr must be a positive float, got -1.0"),
    ("train", [*LABEL, "--patience", "0"], _no_setup,
     "--patience: patience must be a positive int or None, got 0"),
    ("train", [*LABEL, "--device", "cuda:7"], _no_setup,
     "--device: device 'cuda:7' is not available"),
    ("train", [*LABEL, "--num_workers", "-1"], _no_setup,
     "--num_workers: num_workers must be an int >= 0, got -1"),
    ("train", LABEL, _one_class, "needs at least 2 classes in y; got one class: 'warm'"),
    ("train", ["--trainset", "train.csv", "--valset", "val.csv", *LABEL],
     _separate_validation_file,
     "validation_data: y contains labels not in the training targets: ['foggy']"),
    ("train", LABEL, _feature_value(np.inf), "feature column 'temp' has 1 value(s) too "
                                             "large for float32"),
    ("train", LABEL, _feature_value(1e300), "feature column 'temp' has 1 value(s) too "
                                            "large for float32"),
    ("predict", [], _feature_value(np.inf), "feature column 'temp' has 1 value(s) too "
                                            "large for float32"),
    ("predict", [], _feature_value(1e300), "feature column 'temp' has 1 value(s) too large "
                                           "for float32 (e.g. 1e+300 in row 5)"),
    ("train", [*LABEL, "--trainvaltestsplit", "0.004", "0.5", "0.496"], _no_setup,
     "--train_val_test_split 0.004 0.5 0.496 leaves no rows for training"),
    ("train", [*LABEL, "--resume"], _checkpoint_without_net,
     "is not an s4learn checkpoint (a dict with its format and the net's state"),
    ("train", [*LABEL, "--output_dir", "blocker/runs"], _blocking_file,
     "--output_dir blocker/runs: blocker is a file, not a folder"),
    ("train", [*LABEL, "--checkpoint_dir", "blocker/checkpoints"], _blocking_file,
     "--checkpoint_dir blocker/checkpoints: blocker is a file, not a folder"),
    ("train", ["--trainset", "train.csv", "--testset", "test.csv", *LABEL],
     _test_file_without_a_feature, "--test_set: no column 'wind' in the data"),
    ("train", [*LABEL, "--seed", "-1"], _no_setup,
     "--seed: random_state must be None, an int in [0, 2**32) or a numpy RandomState, "
     "got -1"),
    ("predict", ["--output_dir", "blocker"], _blocking_file,
     "--output_dir blocker is a file, not a folder"),
    ("predict", ["--overwrite"], _predictions_folder,
     "s4model_predictions.csv is a folder; it cannot be replaced by the predictions"),
    ("train", [*LABEL, "--output_dir", "locked/runs"], _read_only_folder,
     "--output_dir locked/runs: cannot write in locked (permission denied)"),
]


@pytest.mark.parametrize("command, arguments, setup, message", BAD_INPUTS,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(BAD_INPUTS)])
def test_bad_input_exits_2_with_one_line_and_no_file(tmp_path, table, pretrained, capsys,
                                                     command, arguments, setup, message):
    setup(tmp_path, table)
    if command == "predict":
        arguments = ["--model", pretrained[1], *arguments]
    if "--trainset" not in arguments:
        arguments = ["--dataset", table, *arguments]
    before = set(tmp_path.rglob("*"))
    tiny = TINY if command == "train" else []  # first: the flags of the case win
    assert run(tmp_path, command, *tiny, *arguments) == 2
    err = capsys.readouterr().err
    assert err.startswith("s4learn: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert set(tmp_path.rglob("*")) == before


# ------------------------------------------------------------- pickles, resume, files
class _Trap:
    """A pickle whose loading creates ``marker`` and then returns a real model."""

    def __init__(self, marker, model):
        self.marker, self.model = str(marker), pickle.dumps(model)

    def __reduce__(self):
        code = (f"open({self.marker!r}, 'w').close() or "
                f"__import__('pickle').loads({self.model!r})")
        return (eval, (code,))


@pytest.fixture
def trap(tmp_path, pretrained):
    marker = tmp_path / "marker"
    joblib.dump(_Trap(marker, load_model(pretrained[1])), tmp_path / "trap.joblib")
    return tmp_path / "trap.joblib", marker


def test_predict_reads_a_pickle_only_with_allow_pickle(tmp_path, table, trap, capsys):
    path, marker = trap
    assert run(tmp_path, "predict", "--model", path, "--dataset", table) == 2
    assert "pass --allow_pickle" in capsys.readouterr().err and not marker.exists()
    assert run(tmp_path, "predict", "--model", path, "--dataset", table,
               "--allow_pickle") == 0
    assert marker.exists()


def test_pretrained_reads_a_pickle_only_with_allow_pickle(tmp_path, table, trap, capsys):
    path, marker = trap
    arguments = ["train", "--dataset", table, *LABEL, "--pretrained", path, "--quiet",
                 "--epochs", "1"]
    assert run(tmp_path, *arguments) == 2
    assert "pass --allow_pickle" in capsys.readouterr().err and not marker.exists()
    assert run(tmp_path, *arguments, "--allow_pickle") == 0
    assert marker.exists()


@pytest.mark.parametrize("allow_pickle", [[], ["--allow_pickle"]])
def test_a_pickled_checkpoint_is_never_loaded(tmp_path, table, trap, capsys, allow_pickle):
    path, marker = trap
    (tmp_path / "s4learn_checkpoints").mkdir()
    path.rename(tmp_path / "s4learn_checkpoints" / "s4model_last.pt")
    assert run(tmp_path, "train", "--dataset", table, *LABEL, "--resume", *allow_pickle,
               *TINY) == 2
    assert "is damaged or not an s4learn checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_resume_is_refused_when_the_data_file_changed(tmp_path, table, capsys):
    arguments = ["train", "--dataset", table, *LABEL, "--quiet", *TINY]
    assert run(tmp_path, *arguments) == 0
    frame = pd.read_csv(table)
    frame.loc[3, "temp"] += 1
    frame.to_csv(table, index=False)
    capsys.readouterr()
    assert run(tmp_path, *arguments, "--resume") == 2
    assert (f"--resume: the data file {table} changed (size or content) since "
            f"s4learn_checkpoints/s4model_last.pt was written") in capsys.readouterr().err


def test_a_kill_while_outputs_are_written_does_not_block_resume(tmp_path, table, monkeypatch):
    arguments = ["train", "--dataset", table, *LABEL, "--quiet", *TINY]

    def killed(*args, **kwargs):
        raise Interrupted

    monkeypatch.setattr("s4learn.cli.training.save_model", killed)
    with pytest.raises(Interrupted):
        run(tmp_path, *arguments)
    monkeypatch.undo()
    runs = tmp_path / "s4learn_runs"
    assert (runs / "s4model_test_results.csv").exists()
    assert not (runs / "s4model.safetensors").exists()
    assert run(tmp_path, *arguments, "--resume") == 0
    assert (runs / "s4model.safetensors").exists()


def test_model_files_are_readable_by_others_and_stale_temporaries_go(tmp_path, table):
    runs = tmp_path / "s4learn_runs"
    runs.mkdir()
    stale = runs / ".s4model.safetensors.0badc0de.tmp"  # left by a killed run
    stale.write_bytes(b"half a model")
    old_umask = os.umask(0o022)
    try:
        assert run(tmp_path, "train", "--dataset", table, *LABEL, "--quiet", *TINY) == 0
    finally:
        os.umask(old_umask)
    assert not stale.exists()
    for path in (runs / "s4model.safetensors",
                 tmp_path / "s4learn_checkpoints" / "s4model_last.pt"):
        assert path.stat().st_mode & 0o777 == 0o644, path
def test_mnist_without_torchvision_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # import fails
    assert run(tmp_path, "train", "--dataset", "mnist", *TINY) == 2
    assert capsys.readouterr().err == ('s4learn: error: load_mnist needs torchvision: '
                                       'pip install "s4learn[vision]"\n')
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_pyarrow_fails_before_training(tmp_path, table, capsys,
                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert run(tmp_path, "train", "--dataset", table, "--dependent_variable", "label",
               "--format", "parquet", *TINY) == 2
    assert capsys.readouterr().err == ('s4learn: error: --format parquet needs pyarrow: '
                                       'pip install "s4learn[parquet]"\n')
    assert sorted(path.name for path in tmp_path.iterdir()) == ["weather.csv"]


def test_predict_reads_the_model_columns_by_name_in_any_order(tmp_path, table, capsys):
    assert run(tmp_path, "train", "--dataset", table, "--dependent_variable", "load",
               "--independent_variables", "temp", "wind", "rain", *TINY) == 0
    outputs = tmp_path / "s4learn_runs" / "s4model_predictions.csv"
    assert run(tmp_path, "predict", "--dataset", table) == 0
    in_order = pd.read_csv(outputs)["y_pred"]
    assert run(tmp_path, "predict", "--dataset", table, "--overwrite",
               "--independent_variables", "rain", "temp", "wind") == 0
    np.testing.assert_array_equal(pd.read_csv(outputs)["y_pred"], in_order)
    capsys.readouterr()
    assert run(tmp_path, "predict", "--dataset", table, "--overwrite",
               "--independent_variables", "temp", "temp", "wind") == 2
    assert capsys.readouterr().err == ("s4learn: error: --independent_variables names "
                                       "'temp' more than once\n")


@pytest.mark.parametrize("name", ["", ".hidden", "runs/model"])
def test_model_names_that_are_not_plain_file_names_are_refused(tmp_path, name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "train", "--model_name", name)
    assert exit_info.value.code == 2
    assert "argument --model_name: expected a file name without folders" in \
        capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_ensemble_regressor_writes_its_standard_deviation(tmp_path, table):
    data = ["--dataset", table, "--dependent_variable", "load", "--independent_variables",
            "temp", "rain", "--window", "3", "--quiet"]
    assert run(tmp_path, "train", *data, "--modelname", "members", "--n_members", "3",
               *TINY) == 0
    model = load_model(tmp_path / "s4learn_runs" / "members.safetensors")
    assert run(tmp_path, "predict", "--dataset", table, "--modelname", "members") == 0
    predictions = pd.read_csv(tmp_path / "s4learn_runs" / "members_predictions.csv")
    y_pred, y_std = model.predict(pd.read_csv(table)[["temp", "rain"]], return_std=True)
    np.testing.assert_allclose(predictions["y_pred"], y_pred)
    np.testing.assert_allclose(predictions["y_std"], y_std)
    assert (y_std > 0).all()
