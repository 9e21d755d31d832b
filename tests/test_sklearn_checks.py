"""scikit-learn's common estimator checks on both estimators (small, fast settings)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from s4learn import S4Classifier, S4Regressor

# The checks' data sets are short rows of unordered features; a bidirectional layer with
# step sizes sized for ~10-step sequences lets the S4 pick out single columns.
SMALL = dict(d_model=16, n_layers=1, d_state=64, max_epochs=20, batch_size=32,
             dropout=0.0, bidirectional=True, dt_min=0.1, dt_max=1.0)

MINIBATCH_REASON = (
    "minibatch training: repeating a sample adds optimizer steps that a weight of 2 does "
    "not; weights are honoured in the loss (see test_estimators.py)")


# The check asks for equality to rtol 1e-7 and atol 1e-7. The network computes in float32,
# and BLAS picks other matrix-product kernels for other numbers of rows, so a prediction
# on one row and the same row's prediction inside a batch differ in the last float32 bits.
# Measured over random_state 0-5 on the check's data: up to 1.9e-7 absolute (8.6e-7
# relative) for the regressor, 5.9e-8 for the classifier's probabilities; the check
# passes at its own seed (an XPASS) but fails at random_state=3, so it is not reliable.
# test_estimators.py asserts the invariance at float32 precision instead.
SUBSET_REASON = (
    "float32 predictions agree across batch sizes to float32 rounding (about 1e-7 "
    "absolute, 1e-6 relative), not always to the check's 1e-7; whether it passes depends "
    "on the fitted weights; see test_estimators.py")


def expected_failed_checks(estimator):
    return {"check_sample_weight_equivalence_on_dense_data": MINIBATCH_REASON,
            "check_methods_subset_invariance": SUBSET_REASON}


@parametrize_with_checks([S4Classifier(**SMALL), S4Regressor(**SMALL)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
