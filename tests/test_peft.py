"""Fine-tuning pretrained S4 networks: s4learn.peft and the estimators' pretrained=."""

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from s4learn import S4Classifier, S4Regressor, save_model
from s4learn.datasets import make_deep_s4_regression
from s4learn.nn import S4DKernel, S4Model
from s4learn.peft import (
    AdaptedS4DKernel,
    LoRA,
    LoRALinear,
    SDLoRA,
    count_merged_parameters,
    merge_adapters,
    select_dimensions,
)

TINY = dict(max_epochs=3, batch_size=32, dropout=0.0, device="cpu",
            random_state=0)


@pytest.fixture(scope="module")
def synthetic():
    X, y, base = make_deep_s4_regression(n_samples=160, seq_len=16, d_model=8,
                                         frozen_d_state=16, random_state=0)
    return X, y, base


@pytest.fixture(scope="module")
def digits_base(digits):
    """A small classifier pretrained on digits 0-4, and the digits 5-9."""
    X, y = digits
    first = y < 5
    base = S4Classifier(d_model=32, n_layers=2, d_state=16, dt_min=0.01, dt_max=0.1,
                        max_epochs=8, batch_size=32, device="cpu", random_state=0)
    base.fit(X[first], y[first])
    return base, X[~first], y[~first]


def test_sdlora_freezes_everything_but_its_updates(synthetic):
    X, y, base = synthetic
    before = copy.deepcopy(base.state_dict())
    model = S4Regressor(pretrained=base, finetune=SDLoRA(lora_rank=2), **TINY).fit(X, y)
    network = model.net_.module_
    assert all(torch.equal(before[name], tensor) for name, tensor in
               base.state_dict().items())  # the pretrained network is untouched
    for index, layer in enumerate(network.layers):
        prefix = f"layers.{index}."
        kernel = layer.kernel
        assert isinstance(kernel, AdaptedS4DKernel)
        for name in ("log_A_real", "A_imag", "C"):  # frozen; updates live elsewhere
            assert torch.equal(getattr(kernel, name), before[prefix + f"kernel.{name}"])
        assert not torch.equal(kernel.log_dt, before[prefix + "kernel.log_dt"])
        assert isinstance(layer.output_linear, LoRALinear)
        assert torch.equal(layer.output_linear.base.weight,
                           before[prefix + "output_linear.weight"])
        assert torch.equal(network.norms[index].weight, before[f"norms.{index}.weight"])
    assert torch.equal(network.encoder.base.weight, before["encoder.weight"])


def test_sdlora_changes_only_the_chosen_entries_of_A_and_C(synthetic):
    X, y, base = synthetic
    finetune = SDLoRA(updatable_channels_dim=3, updatable_states_dim=2, lora_rank=2)
    model = S4Regressor(pretrained=base, finetune=finetune, **TINY).fit(X, y)
    for layer, pretrained_layer in zip(model.net_.module_.layers, base.layers):
        kernel = layer.kernel
        trainable = torch.zeros_like(kernel.log_A_real, dtype=torch.bool).flatten()
        trainable[kernel.updates["log_A_real"].index] = True
        trainable = trainable.view_as(kernel.log_A_real)
        assert trainable.sum() == 3 * 2
        assert (trainable.sum(dim=1) > 0).sum() == 3  # three channels, two states each
        with torch.no_grad():
            _, log_A_real, A_imag, C = kernel.ssm_parameters()
        reference = pretrained_layer.kernel
        changed_A = (log_A_real != reference.log_A_real) | (A_imag != reference.A_imag)
        changed_C = (C != reference.C).any(dim=-1).any(dim=0)
        assert changed_A.any() and changed_C.any()
        assert not (changed_A & ~trainable).any()
        assert not (changed_C & ~trainable).any()


def test_select_dimensions_matches_a_plain_ranking():
    torch.manual_seed(0)
    before = S4DKernel(6, 10, channels=2)
    after = copy.deepcopy(before)
    with torch.no_grad():
        for parameter in after.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    trainable, kept = select_dimensions(before, after, 4, 2, 3, 2)
    importance = ((after.log_A_real - before.log_A_real) ** 2
                  + (after.A_imag - before.A_imag) ** 2
                  + ((after.C - before.C) ** 2).sum(dim=(0, 3))).detach().numpy()
    channels = sorted(range(6), key=lambda h: -importance[h].sum())
    for h in range(6):
        states = sorted(range(5), key=lambda n: -importance[h, n])
        for n in range(5):
            assert kept[h, n] == (h in channels[:4] and n in states[:3])
            assert trainable[h, n] == (h in channels[:2] and n in states[:2])


def test_lora_counts_exactly_its_adapters():
    X = np.random.RandomState(0).randn(64, 12, 3)
    y = np.arange(64) % 4
    base = S4Classifier(d_model=8, n_layers=2, d_state=8, **TINY).fit(X, y)
    model = S4Classifier(pretrained=base, finetune=LoRA(lora_rank=2), **TINY)
    model.fit(X, y % 2)  # two classes: a new head of 4 statistics of 3 taps of 8 * 2 + 2
    rank, H, n_inputs = 2, 8, 3 * 3  # 3 channels, their differences, the log view of these
    expected = rank * (n_inputs + H) + 2 * rank * (H + 2 * H) + (4 * 3 * H * 2 + 2)
    assert model.n_trainable_params_ == expected
    assert model.n_params_ == sum(p.numel() for p in base.net_.module_.parameters()) \
        - (4 * 3 * H * 4 + 4) + (4 * 3 * H * 2 + 2)
    assert model.net_.module_.decoder.out_features == 2


@pytest.mark.parametrize("finetune", [SDLoRA(lora_rank=2), LoRA(ssm_method="lora")])
def test_ssm_updates_train_with_the_ssm_settings(synthetic, finetune):
    """dt, A and the updates of A keep the SSM's learning rate and no weight decay."""
    X, y, base = synthetic
    model = S4Regressor(pretrained=base, finetune=finetune, **{**TINY, "max_epochs": 1})
    model.fit(X, y)
    group_of = {id(p): g for g in model.net_.optimizer_.param_groups for p in g["params"]}
    kernel = model.net_.module_.layers[0].kernel
    ssm = [kernel.log_dt, *kernel.updates["log_A_real"].parameters(),
           *kernel.updates["A_imag"].parameters()]
    assert all(group_of[id(p)]["initial_lr"] == 0.001 for p in ssm)
    assert all(group_of[id(p)]["weight_decay"] == 0.0 for p in ssm)
    for p in kernel.updates["C"].parameters():
        assert group_of[id(p)]["initial_lr"] == model.lr
        assert group_of[id(p)]["weight_decay"] == model.weight_decay


def test_dropout_is_the_finetuning_estimators(digits_base):
    base, X, y = digits_base
    model = S4Classifier(pretrained=base, finetune=LoRA(lora_dropout=0.05),
                         **{**TINY, "max_epochs": 1, "dropout": 0.2}).fit(X, y)
    network = model.net_.module_
    lora_dropouts = [m.dropout for m in network.modules() if isinstance(m, LoRALinear)]
    block_dropouts = [m for m in network.modules() if isinstance(m, torch.nn.Dropout)
                      and all(m is not lora for lora in lora_dropouts)]
    assert {m.p for m in block_dropouts} == {0.2} and len(block_dropouts) == 4
    assert {m.p for m in lora_dropouts} == {0.05}
    assert {m.p for m in base.net_.module_.modules() if isinstance(m, torch.nn.Dropout)} \
        == {base.dropout} != {0.2}  # the pretrained network keeps its own


def test_same_classes_keep_the_pretrained_head(digits_base, digits):
    base, X, y = digits_base
    X0, y0 = digits
    model = S4Classifier(pretrained=base, finetune=LoRA(lp_method="freeze"),
                         max_epochs=1, lr=1e-12, device="cpu", random_state=0)
    model.fit(X0[y0 < 5], y0[y0 < 5])  # same task, learning rate ~0: same function
    np.testing.assert_allclose(model.predict_proba(X0[:50]), base.predict_proba(X0[:50]),
                               atol=1e-5)


def test_batch_statistics_train_only_with_the_norms(digits_base):
    base, X, y = digits_base
    frozen = S4Classifier(pretrained=base, finetune=LoRA(), **TINY).fit(X, y)
    statistics = [(name, buffer) for name, buffer in frozen.net_.module_.named_buffers()
                  if name.endswith("running_mean")]
    pretrained = dict(base.net_.module_.named_buffers())
    assert len(statistics) == 3  # two blocks and the input differences
    assert all(torch.equal(buffer, pretrained[name]) for name, buffer in statistics)
    # a network tuned that way, fine-tuned in full, updates its statistics again
    full = S4Classifier(pretrained=frozen, **TINY).fit(X, y)
    updated = dict(full.net_.module_.named_buffers())
    assert not any(torch.equal(updated[name], buffer) for name, buffer in statistics)


def test_merge_leaves_predictions_unchanged(synthetic):
    X, y, base = synthetic
    for finetune in (SDLoRA(lora_rank=2, select_states_dim=6, updatable_states_dim=2),
                     LoRA(lora_rank=2, ssm_method="lora", D_method="full")):
        model = S4Regressor(pretrained=base, finetune=finetune, **TINY).fit(X, y)
        before = model.predict(X)
        assert count_merged_parameters(model.net_.module_) == model.n_params_
        rng_state = torch.get_rng_state()
        model.merge()
        assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG untouched
        network = model.net_.module_
        assert sum(p.numel() for p in network.parameters()) == model.n_params_
        assert not any(isinstance(m, (LoRALinear, AdaptedS4DKernel))
                       for m in network.modules())
        assert isinstance(network.layers[0].kernel, S4DKernel)
        np.testing.assert_allclose(model.predict(X), before, rtol=1e-5, atol=1e-5)


def test_merge_adapters_of_an_untrained_adapter_is_the_base():
    torch.manual_seed(0)
    network = S4Model(2, 3, d_model=8, n_layers=1, d_state=8).eval()
    x = torch.randn(4, 10, 2)
    adapted = LoRA(lora_rank=2, ssm_method="lora").adapt(copy.deepcopy(network)).eval()
    with torch.no_grad():
        assert torch.equal(adapted(x), network(x))
        torch.testing.assert_close(merge_adapters(adapted).eval()(x), network(x))


def test_adapted_kernel_holds_the_base_parameters_through_the_kernel_constructor():
    torch.manual_seed(0)
    base = S4DKernel(4, 8, channels=2, mode="plain")
    rng_state = torch.random.get_rng_state()
    adapted = AdaptedS4DKernel(base, {}, trainable=("log_dt",))
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # no random init
    assert all(getattr(adapted, name) is getattr(base, name)
               for name in AdaptedS4DKernel.SSM_NAMES)
    assert [name for name, parameter in adapted.named_parameters()
            if parameter.requires_grad] == ["log_dt"]
    assert set(adapted.state_dict()) == set(base.state_dict())
    merged = adapted.merged()
    assert type(merged) is S4DKernel and merged.mode == "plain"
    assert all(getattr(merged, name) is not getattr(base, name)
               and torch.equal(getattr(merged, name), getattr(base, name))
               for name in AdaptedS4DKernel.SSM_NAMES)


def test_only_sdlora_asks_for_a_warmup_run_and_checks_settings_first(synthetic):
    _, _, base = synthetic
    network = copy.deepcopy(base)
    assert LoRA().warmup_run(network) is None
    assert SDLoRA(ssm_method="lora").warmup_run(network) is None
    run = SDLoRA(warmup_epochs=2, warmup_lr=0.01).warmup_run(network)
    assert (run.epochs, run.lr) == (2, 0.01) and run.network is not network
    trainable = {name for name, parameter in run.network.named_parameters()
                 if parameter.requires_grad}
    assert trainable == {name for name, _ in run.network.named_parameters()
                         if ".kernel." in name or name.startswith("decoder.")}
    assert all(parameter.requires_grad for parameter in network.parameters())  # untouched
    with pytest.raises(ValueError, match="ssm_method='sdlora' needs a warmup run"):
        SDLoRA().adapt(copy.deepcopy(base))
    with pytest.raises(ValueError, match=r"updatable_channels_dim \(4\) must not exceed"):
        SDLoRA(select_channels_dim=2, updatable_channels_dim=4).warmup_run(network)


def test_finetuned_estimators_pickle_and_clone(synthetic, tmp_path):
    X, y, base = synthetic
    model = S4Regressor(pretrained=base, finetune=SDLoRA(lora_rank=2), **TINY).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    joblib.dump(model, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(X),
                                  model.predict(X))
    twin = clone(model)
    assert twin.pretrained is base  # the pretrained model is data: not refitted
    assert twin.finetune is not model.finetune
    assert twin.finetune.get_params() == model.finetune.get_params()
    assert not hasattr(twin, "net_")
    np.testing.assert_allclose(twin.fit(X, y).predict(X), model.predict(X), rtol=1e-5,
                               atol=1e-6)


def test_pretrained_from_a_file(digits_base, tmp_path):
    base, X, y = digits_base
    path = tmp_path / "base.safetensors"
    save_model(base, path)
    from_path = S4Classifier(pretrained=path, finetune=LoRA(), max_epochs=1,
                             device="cpu", random_state=0).fit(X, y)
    from_object = S4Classifier(pretrained=base, finetune=LoRA(), max_epochs=1,
                               device="cpu", random_state=0).fit(X, y)
    np.testing.assert_array_equal(from_path.predict_proba(X), from_object.predict_proba(X))


def test_grid_search_over_a_method_setting(synthetic):
    X, y, base = synthetic
    search = GridSearchCV(
        S4Regressor(pretrained=base, finetune=LoRA(), **TINY),
        {"finetune__lora_rank": [1, 3]}, cv=2)
    search.fit(X, y)
    rank = search.best_params_["finetune__lora_rank"]
    ranks = {module.lora_A.shape[0] for module in search.best_estimator_.net_.module_.modules()
             if isinstance(module, LoRALinear)}
    assert ranks == {rank}  # the refitted model has the adapters of the chosen rank
    first, second = search.cv_results_["mean_test_score"]
    assert first != second  # each candidate trained adapters of its own rank
    assert search.best_estimator_.pretrained is base


def test_sdlora_transfers_between_digit_sets(digits_base):
    base, X, y = digits_base
    X_train, y_train, X_test, y_test = X[::2], y[::2], X[1::2], y[1::2]
    finetune = SDLoRA(updatable_channels_dim=4, updatable_states_dim=2, lora_rank=2,
                      D_method="freeze")
    model = S4Classifier(pretrained=base, finetune=finetune, max_epochs=15,
                         lr=0.01, batch_size=32, device="cpu", random_state=0)
    model.fit(X_train, y_train)
    head = sum(parameter.numel() for parameter in model.net_.module_.decoder.parameters())
    # besides the output layer, which is always trained, a small share of the network
    assert (model.n_trainable_params_ - head) / (model.n_params_ - head) < 0.12
    assert model.score(X_test, y_test) > 0.8  # five classes: chance is 0.2


@pytest.mark.parametrize("finetune, message", [
    (SDLoRA(select_channels_dim=4, updatable_channels_dim=6),
     r"updatable_channels_dim \(6\) must not exceed select_channels_dim \(4\)"),
    (SDLoRA(select_states_dim=0.25, updatable_states_dim=0.5),
     r"updatable_states_dim \(4\) must not exceed select_states_dim \(2\)"),
    (SDLoRA(updatable_channels_dim=9), r"updatable_channels_dim must be between 0 and 8"),
    (SDLoRA(updatable_states_dim="all"), r"updatable_states_dim must be an int count"),
    (LoRA(lora_rank=0), r"lora_rank must be a positive int"),
    (LoRA(ssm_method="sdlora"), r"needs the SDLoRA method"),
    (SDLoRA(lp_method="adapter"), r"lp_method must be one of"),
])
def test_bad_method_settings(synthetic, finetune, message):
    X, y, base = synthetic
    with pytest.raises(ValueError, match=message):
        S4Regressor(pretrained=base, finetune=finetune, **TINY).fit(X, y)


def test_bad_pretrained_models(synthetic, tmp_path):
    X, y, base = synthetic
    with pytest.raises(ValueError, match="reads 8 input channels per step, but X has 3"):
        S4Regressor(pretrained=base, finetune=LoRA(), **TINY).fit(X[..., :3], y)
    with pytest.raises(ValueError, match="finetune needs a pretrained model"):
        S4Regressor(finetune=LoRA(), **TINY).fit(X, y)
    with pytest.raises(TypeError, match="finetune must be None or a method from s4learn.peft"):
        S4Regressor(pretrained=base, finetune="lora", **TINY).fit(X, y)
    with pytest.raises(TypeError, match="pretrained must be a fitted S4Classifier"):
        S4Regressor(pretrained=42, **TINY).fit(X, y)

    class LooksFitted:
        net_ = None

    with pytest.raises(TypeError, match="pretrained must be .* got LooksFitted"):
        S4Regressor(pretrained=LooksFitted(), **TINY).fit(X, y)
    with pytest.raises(NotFittedError):
        S4Regressor(pretrained=S4Regressor(), **TINY).fit(X, y)
    with pytest.raises(ValueError, match="pretrained model file not found"):
        S4Regressor(pretrained=tmp_path / "missing.joblib", **TINY).fit(X, y)


def test_verbose_sdlora_announces_its_warmup(synthetic, capsys):
    X, y, base = synthetic
    S4Regressor(pretrained=base, finetune=SDLoRA(warmup_epochs=2, warmup_lr=0.005),
                verbose=1, **{**TINY, "max_epochs": 1}).fit(X, y)
    out = capsys.readouterr().out
    assert out.startswith("Warmup: 2 epoch(s) of the SSM parameters at lr=0.005")
    assert out.count("train_loss") == 2  # the warmup's epoch table, then fit's
