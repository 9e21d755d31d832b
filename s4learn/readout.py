"""The closed-form readout: the output layer refitted by ridge regression after training.

On a few dozen training series, gradient descent leaves the output layer far from the
best linear map of the features it reads, long before the features themselves stop
improving. So after the epochs of ``fit`` the output layer (``decoder``) is replaced by
a ridge regression of the targets on the network's pooled features of the training data
(in eval mode, as prediction sees them), its penalty chosen by exact leave-one-out
error, as scikit-learn's ``RidgeCV`` and the Rocket classifiers choose theirs.

- Regression: the standardised targets, one ridge per ensemble member.
- Classification: one-hot targets; the ridge scores become logits through a
  temperature that minimises the leave-one-out log loss, so ``predict_proba`` stays a
  probability and not a squashed score.

Everything is float64 numpy; nothing here reads an estimator.
"""

from typing import NamedTuple

import numpy as np

ALPHAS = np.logspace(-3, 4, 15)  # penalties tried, on standardised features
TEMPERATURES = np.logspace(-1, 3, 81)  # logit scales tried for a classifier


class RidgeFit(NamedTuple):
    """A weighted ridge fit on standardised features, mapped back to the raw ones."""

    coef: np.ndarray  # (n_features, n_targets), for the raw features
    intercept: np.ndarray  # (n_targets,)
    alpha: float  # the penalty chosen
    loo_predictions: np.ndarray  # (n_samples, n_targets), each left out of its own fit


def ridge_loo(features, targets, weights, alphas=ALPHAS):
    """Weighted ridge regression with the penalty of least leave-one-out error.

    Minimises ``sum_i w_i (y_i - b - z_i @ beta)**2 + alpha * |beta|**2`` where ``z``
    are the features centred on their weighted mean and divided by their root mean
    square deviation from it (unweighted: a feature that varies only among samples of
    negligible weight keeps its scale, so those samples cannot steer the fit through
    it), for each ``alpha``; the intercept ``b`` is not penalised. The leave-one-out
    residual of sample ``i`` is its residual divided by ``1 - h_ii``, the hat matrix's
    diagonal (exact for a linear smoother). Samples of weight 0 take no part.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    targets : ndarray of shape (n_samples, n_targets)
    weights : ndarray of shape (n_samples,)
        Non-negative sample weights.
    alphas : sequence of float

    Returns
    -------
    RidgeFit
    """
    X, Y, w = (np.asarray(a, dtype=np.float64) for a in (features, targets, weights))
    used = w > 0
    if not used.all():
        X, Y, w = X[used], Y[used], w[used]
    mean = w @ X / w.sum()
    scale = np.sqrt(((X - mean) ** 2).mean(axis=0))
    scale = np.where(scale > 1e-12 * (np.abs(mean) + 1), scale, 1.0)
    root_w = np.sqrt(w)[:, None]
    # the standardised features and the intercept as one more, unpenalised column, all
    # rows times sqrt(w): one array of the size of the features
    Z = np.empty((len(X), X.shape[1] + 1))
    np.subtract(X, mean, out=Z[:, :-1])
    Z[:, :-1] /= scale
    Z[:, -1] = 1.0
    Z *= root_w
    gram, Zy = Z.T @ Z, Z.T @ (Y * root_w)
    unpenalised = np.eye(Z.shape[1])
    unpenalised[-1, -1] = 0.0
    best = None
    for alpha in alphas:
        inverse = np.linalg.pinv(gram + alpha * unpenalised, hermitian=True)
        beta = inverse @ Zy
        leverage = np.einsum("ij,jk,ik->i", Z, inverse, Z)
        residuals = (Y * root_w - Z @ beta) / np.maximum(1 - leverage, 1e-12)[:, None]
        error = float((residuals**2).sum())
        if best is None or error < best[0]:
            best = (error, alpha, beta, residuals / root_w)
    _, alpha, beta, loo_residuals = best
    coef = beta[:-1] / scale[:, None]
    all_loo = np.full((len(used), Y.shape[1]), np.nan)
    all_loo[used] = Y - loo_residuals
    return RidgeFit(coef, beta[-1] - mean @ coef, float(alpha), all_loo)


def best_temperature(scores, labels, weights, temperatures=TEMPERATURES):
    """The scale ``T`` of ``scores`` (n, n_classes) whose softmax has the least weighted
    log loss on ``labels`` (class indices); rows of weight 0 or NaN scores take no part."""
    used = (weights > 0) & np.isfinite(scores).all(axis=1)
    scores, labels, weights = scores[used], labels[used], weights[used]
    losses = []
    for temperature in temperatures:
        logits = temperature * scores
        logits -= logits.max(axis=1, keepdims=True)
        log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        losses.append(-(weights * log_probabilities[np.arange(len(labels)), labels]).sum())
    return float(temperatures[int(np.argmin(losses))])


def readout_layer(pooled, targets, weights, n_members, n_outputs, classifier):
    """Weights ``(n_members, n_outputs, d_model)`` and bias ``(n_members * n_outputs,)``
    of an output layer refitted on ``pooled`` features ``(n, n_members * d_model)``,
    and the members' leave-one-out predictions ``(n, n_members, n_outputs)`` (the ridge
    scores for a classifier, before the temperature).

    ``targets`` are class indices for a ``classifier`` (whose output layer gives
    ``n_outputs`` logits), else the standardised targets ``(n, n_outputs)``. Each
    member's slice of the features gets its own ridge fit.
    """
    if classifier:
        targets = np.asarray(targets, dtype=np.int64)
        fitted_targets = np.eye(n_outputs)[targets]
    else:
        fitted_targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    weight, bias, loo = [], [], []
    for member_features in np.split(pooled, n_members, axis=1):
        fit = ridge_loo(member_features, fitted_targets, weights)
        coef, intercept = fit.coef, fit.intercept
        if classifier:
            temperature = best_temperature(fit.loo_predictions, targets, weights)
            coef, intercept = temperature * coef, temperature * intercept
        weight.append(coef.T)
        bias.append(intercept)
        loo.append(fit.loo_predictions)
    return np.stack(weight), np.concatenate(bias), np.stack(loo, axis=1)
