"""Scaling up: precision, compilation, several processes, Dask and device choice."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from s4learn import S4Classifier, load_model
from s4learn.nn import S4D
from s4learn.training import check_accelerator, resolve_device

sys.path.insert(0, str(Path(__file__).parent))
from accelerate_worker import SETTINGS, easy_task  # noqa: E402

TINY = dict(SETTINGS, device="cpu")


def test_ssm_convolution_stays_float32_under_autocast():
    layer = S4D(d_model=4, d_state=8)
    u = torch.randn(2, 32, 4)
    expected = layer.ssm_convolution(u)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer.ssm_convolution(u.bfloat16())
        assert y.dtype == torch.float32
        assert layer(u).dtype == torch.bfloat16  # the position-wise output is autocast
    torch.testing.assert_close(y, layer.ssm_convolution(u.bfloat16().float()))
    assert (y - expected).abs().max() < 0.05  # only the bf16 rounding of the input


def test_bf16_training_is_as_accurate_as_float32():
    X, y = easy_task()
    X_test, y_test = easy_task(seed=1)
    full = S4Classifier(**TINY).fit(X, y)
    mixed = S4Classifier(**TINY, precision="bf16").fit(X, y)
    assert full.score(X_test, y_test) > 0.9
    assert mixed.score(X_test, y_test) >= full.score(X_test, y_test) - 0.03
    # autocast did run: the trained weights are not those of the float32 fit
    assert not torch.equal(full.net_.module_.encoder.weight, mixed.net_.module_.encoder.weight)


@pytest.mark.parametrize("precision, message", [
    ("fp16", "precision='fp16' needs a CUDA device"),
    ("half", "precision must be one of"),
])
def test_bad_precision_on_the_cpu(precision, message):
    X, y = easy_task(n=96)
    with pytest.raises(ValueError, match=message):
        S4Classifier(**TINY, precision=precision).fit(X, y)


def test_compile_predicts_as_eager(monkeypatch):
    """compile=True trains and predicts through torch.compile like eager mode.

    Inductor's C++ code generation takes minutes on a small CPU, so the compiled
    graphs run on the "aot_eager" backend: the same graph capture and autograd
    tracing, without generating code.
    """
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: compile_(
        module, **{**kwargs, "backend": "aot_eager"}))
    X, y = easy_task(n=96)
    settings = dict(TINY, max_epochs=1)
    eager = S4Classifier(**settings).fit(X, y)
    with pytest.warns(FutureWarning, match="compile is deprecated"):
        compiled = S4Classifier(**settings, compile=True)  # honoured until 0.3
    compiled.fit(X, y)
    assert type(compiled.net_.compiled_module()).__name__ == "OptimizedModule"
    assert type(compiled.net_.module_).__name__ == "S4Model"  # saved as the plain module
    np.testing.assert_allclose(compiled.predict_proba(X), eager.predict_proba(X), atol=1e-5)


def test_accelerator_checks():
    with pytest.raises(TypeError, match="must be an accelerate.Accelerator"):
        check_accelerator("cuda", "float32")


@pytest.mark.parametrize("local_rank, n_gpus, expected", [
    (None, 2, "cuda"), ("1", 2, "cuda:1"), ("1", 1, "cuda:0"), ("3", 2, "cuda:1")])
def test_auto_device_is_the_process_gpu(monkeypatch, local_rank, n_gpus, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert resolve_device("auto") == expected
    assert resolve_device("cuda:0") == "cuda:0"


def test_auto_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == "cpu"


def test_two_processes_train_one_model(tmp_path):
    """torchrun, two CPU processes (gloo): the same weights, one file, the same accuracy."""
    pytest.importorskip("accelerate")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    command = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])
    worker = Path(__file__).parent / "accelerate_worker.py"
    result = subprocess.run(
        command + ["--standalone", "--nproc_per_node", "2", str(worker), str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert int(np.load(tmp_path / "processes_0.npy")) == 2
    weights = [torch.load(tmp_path / f"weights_{rank}.pt") for rank in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0)
    saved = sorted(path.name for path in tmp_path.glob("*.safetensors"))
    assert saved == ["model.safetensors"]
    X, y = easy_task()
    model = load_model(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(model.predict_proba(X), np.load(tmp_path / "proba_0.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "proba_1.npy"),
                                  np.load(tmp_path / "proba_0.npy"))
    X_test, y_test = easy_task(seed=1)
    one_process = S4Classifier(**TINY).fit(X, y)
    assert model.score(X_test, y_test) > 0.9
    assert abs(model.score(X_test, y_test) - one_process.score(X_test, y_test)) < 0.05


def test_grid_search_on_a_dask_cluster_scores_as_locally():
    distributed = pytest.importorskip("distributed")
    import joblib
    from sklearn.model_selection import GridSearchCV

    X, y = easy_task(n=96)
    settings = dict(TINY, max_epochs=2, batch_size=8)
    grid = {"d_model": [4, 8]}
    local = GridSearchCV(S4Classifier(**settings), grid, cv=2).fit(X, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        remote = GridSearchCV(S4Classifier(**settings), grid, cv=2, n_jobs=-1).fit(X, y)
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_


def test_model_trained_in_fp16_loads_and_predicts_on_the_cpu(tmp_path):
    from s4learn import save_model

    X, y = easy_task(n=96)
    clf = S4Classifier(**TINY).fit(X, y)
    clf.precision = "fp16"  # as a model trained on a GPU would be saved
    save_model(clf, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors", device="cpu")
    assert loaded.precision == "fp16"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_loss_scaled_steps_train_as_plain_steps():
    """The fp16 path's optimizer step (GradScaler), run on the CPU with a scale of 2**10."""

    class ScaleTheLoss(Callback):
        def on_train_begin(self, net, **kwargs):
            net.grad_scaler_ = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10,
                                                    growth_interval=1)  # doubles each step

    X, y = easy_task(n=96)
    settings = dict(TINY, max_epochs=2)
    plain = S4Classifier(**settings).fit(X, y)
    scaled = S4Classifier(**settings, callbacks=[ScaleTheLoss()]).fit(X, y)
    steps = 2 * (96 // settings["batch_size"])  # 2 epochs of full batches
    assert scaled.net_.grad_scaler_.get_scale() == 2.0 ** (10 + steps)  # a scaler step each
    np.testing.assert_allclose(scaled.predict_proba(X), plain.predict_proba(X), atol=1e-5)
