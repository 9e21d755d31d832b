"""Ensembles trained as one network (n_members): independent members, mean outputs."""

import copy

import numpy as np
import pytest
import torch
from scipy.special import softmax

from s4learn import S4Classifier, S4Regressor, load_model, save_model
from s4learn.export import export_program
from s4learn.nn import S4Model
from s4learn.nn.ensemble import GroupedLinear
from s4learn.nn.model import members_apart, pooled_out
from s4learn.peft import LoRA, SDLoRA
from s4learn.readout import ridge_loo
from s4learn.streaming import StreamingPredictor
from s4learn.training import net_outputs

ENSEMBLE = dict(d_model=8, n_layers=2, d_state=8, n_members=3, max_epochs=4, device="cpu",
                random_state=0)
LENGTH = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(64, LENGTH, 2)
    return X, (X[:, :, 0].cumsum(axis=1)[:, -4:].mean(axis=1) > 0).astype(int)


@pytest.fixture(scope="module")
def classifier(data):
    return S4Classifier(**ENSEMBLE).fit(*data)


@pytest.fixture(scope="module")
def regressor(data):
    X, _ = data
    y = np.stack([X[:, :, 0].sum(axis=1), X[:, -1, 1]], axis=1) * 5 + 3
    return S4Regressor(**{**ENSEMBLE, "max_epochs": 20}).fit(X, y), y


def member_probabilities(classifier, X):
    with members_apart(classifier.net_.module_):
        return softmax(classifier._forward(X), axis=-1)  # (n, members, classes)


def test_grouped_linear_equals_its_block_diagonal_linear():
    torch.manual_seed(0)
    grouped = GroupedLinear(3, 4, 5)
    dense = torch.block_diag(*grouped.weight.detach())  # (15, 12)
    x = torch.randn(2, 7, 12)
    torch.testing.assert_close(grouped(x), x @ dense.T + grouped.bias.detach())


def test_members_share_nothing_but_the_input():
    torch.manual_seed(0)
    network = S4Model(d_input=2, d_output=3, d_model=4, n_layers=2, d_state=8,
                      n_members=3).eval()
    x = torch.randn(5, 10, 2)
    with torch.no_grad(), members_apart(network):
        before = network(x)
        for name, tensor in [*network.named_parameters(), *network.named_buffers()]:
            if tensor.dim() == 0 or name.startswith("difference_norm"):
                continue  # a batch count; the shared input statistics
            axis = 1 if name.endswith("kernel.C") else 0  # the channels (or groups)
            member_1 = tensor.unflatten(axis, (3, -1)).select(axis, 1)
            member_1.add_(0.5)
        after = network(x)
    torch.testing.assert_close(after[:, [0, 2]], before[:, [0, 2]])
    assert not torch.allclose(after[:, 1], before[:, 1])


def test_members_differ_and_predict_proba_is_their_mean(classifier, data):
    X, _ = data
    members = member_probabilities(classifier, X[:20])
    assert members.shape == (20, 3, 2)
    spread = np.abs(members - members.mean(axis=1, keepdims=True)).max()
    assert spread > 1e-2  # three differently initialised networks
    np.testing.assert_allclose(classifier.predict_proba(X[:20]), members.mean(axis=1),
                               rtol=0, atol=1e-6)
    assert classifier.score(*data) > 0.7


def test_saved_loaded_and_exported_ensembles_predict_the_same(classifier, data, tmp_path):
    X, _ = data
    expected = classifier.predict_proba(X[:9])
    save_model(classifier, tmp_path / "ensemble.s4")
    loaded = load_model(tmp_path / "ensemble.s4")
    assert loaded.net_.module_.n_members == 3
    np.testing.assert_array_equal(loaded.predict_proba(X[:9]), expected)
    program = export_program(classifier, LENGTH)
    with torch.no_grad():
        exported = program.module()(torch.tensor(X[:9], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(exported, expected, rtol=0, atol=1e-5)


def test_stream_is_the_members_mean_on_every_prefix(classifier, data):
    X, _ = data
    predictor = StreamingPredictor(classifier).reset(n_streams=4)
    streamed = predictor.update(X[:4])
    for t in range(1, LENGTH + 1):
        prefix = copy.copy(classifier)
        prefix.input_shape_, prefix.n_features_in_ = (t, 2), 2 * t
        prefix.layout = "NLC"  # a prefix may have fewer steps than channels
        np.testing.assert_allclose(streamed[:, t - 1], prefix.predict_proba(X[:4, :t]),
                                   rtol=0, atol=1e-5)


def test_regressor_predicts_the_members_mean_with_their_spread(regressor, data):
    model, y = regressor
    X, _ = data
    with members_apart(model.net_.module_):
        members = model._forward(X[:10]) * model.target_scale_ + model.target_mean_
    y_pred, y_std = model.predict(X[:10], return_std=True)
    np.testing.assert_allclose(y_pred, members.mean(axis=1))
    spread = members.std(axis=1, ddof=1)
    np.testing.assert_allclose(y_std, np.sqrt(spread**2 + model.noise_std_**2))
    assert (y_std > 0).all()
    np.testing.assert_array_equal(model.predict(X[:10]), y_pred)
    assert model.score(X, y) > 0.3


def test_a_single_network_predicts_its_leave_one_out_error(fitted_regressor):
    model, X = fitted_regressor
    y_pred, y_std = model.predict(X[:3], return_std=True)
    np.testing.assert_array_equal(y_pred, model.predict(X[:3]))
    np.testing.assert_array_equal(y_std, np.full(3, model.noise_std_[0]))
    assert model.noise_std_[0] > 0


def test_noise_is_the_leave_one_out_error_of_the_readout(tiny):
    X = np.random.RandomState(2).randn(50, 10)
    y = 5 * X[:, -3:].sum(axis=1) + 100
    model = S4Regressor(**tiny).fit(X, y)
    inputs = model._net_inputs(X.reshape(50, 10, 1).astype(np.float32), None)
    with pooled_out(model.net_.module_):
        pooled = net_outputs(model.net_, inputs)
    scaled = (y - model.target_mean_) / model.target_scale_
    loo = ridge_loo(pooled, scaled[:, None], np.ones(50)).loo_predictions[:, 0]
    rms = np.sqrt(np.mean((scaled - loo) ** 2)) * model.target_scale_
    np.testing.assert_allclose(model.noise_std_, rms, rtol=1e-5)
    # leave-one-out, not in-sample: larger than the training residuals
    assert model.noise_std_[0] > np.sqrt(np.mean((model.predict(X) - y) ** 2))


def test_a_model_without_noise_std_refuses_return_std(fitted_regressor):
    model = copy.deepcopy(fitted_regressor[0])
    del model.noise_std_
    with pytest.raises(ValueError, match=r"return_std=True needs noise_std_, which this "
                                         r"model lacks: it was saved by s4learn 0.2 or "
                                         r"earlier; fit it again"):
        model.predict(fitted_regressor[1][:3], return_std=True)
    assert model.predict(fitted_regressor[1][:3]).shape == (3,)


@pytest.mark.parametrize("finetune", [None, LoRA(), SDLoRA(warmup_epochs=1)],
                         ids=["whole", "lora", "sdlora"])
def test_an_ensemble_fine_tunes_and_merges_member_by_member(classifier, data, finetune,
                                                            tmp_path):
    X, y = data
    tuned = S4Classifier(**{**ENSEMBLE, "max_epochs": 2}, pretrained=classifier,
                         finetune=finetune).fit(X[::-1].copy(), 1 - y[::-1])
    assert tuned.net_.module_.n_members == 3
    adapted = tuned.predict_proba(X[:8])
    assert np.abs(adapted - classifier.predict_proba(X[:8])).max() > 1e-3
    tuned.merge()
    grouped = [m for m in tuned.net_.module_.modules() if isinstance(m, GroupedLinear)]
    assert len(grouped) == 3  # two mixing layers and the decoder stay block-diagonal
    np.testing.assert_allclose(tuned.predict_proba(X[:8]), adapted, rtol=0, atol=1e-6)
    save_model(tuned, tmp_path / "tuned.s4")
    np.testing.assert_allclose(load_model(tmp_path / "tuned.s4").predict_proba(X[:8]),
                               adapted, rtol=0, atol=1e-6)


def test_layer_norm_ensembles_are_refused():
    with pytest.raises(ValueError, match="n_members > 1 needs norm='batch'"):
        S4Model(d_input=1, d_output=2, n_members=2, norm="layer")
