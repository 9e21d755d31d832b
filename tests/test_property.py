"""Random finite inputs either fit and predict finite outputs or raise a clear error.

A property-based test (hypothesis): arrays of float32, int and uint8 values of random
shapes and sizes, finite but as large as their dtype allows, go through ``fit`` and
``predict``; the only acceptable failures are a ValueError or a TypeError.
"""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from s4learn import S4Classifier, S4Regressor

TINY = dict(d_model=4, n_layers=1, d_state=4, max_epochs=1, random_state=0)
DTYPES = [np.float32, np.int32, np.uint8]


@st.composite
def inputs(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(2, 12))
    shape = draw(st.sampled_from([(n, draw(st.integers(1, 9))),
                                  (n, draw(st.integers(2, 9)), draw(st.integers(1, 3))),
                                  (n, draw(st.integers(1, 5)), draw(st.integers(1, 5)), 1)]))
    elements = (st.floats(allow_nan=False, allow_infinity=False, width=32)
                if dtype is np.float32 else None)
    X = draw(hnp.arrays(dtype, shape, elements=elements))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)))
    return X, y


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(inputs(), st.booleans())
def test_random_finite_inputs_fit_and_predict_finite_or_raise_a_clear_error(data, regress):
    X, y = data
    model = S4Regressor(**TINY) if regress else S4Classifier(**TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a user's batch_size warning, numpy's notes
        try:
            model.fit(X, y.astype(float) if regress else y)
            outputs = model.predict_proba(X) if not regress else model.predict(X)
        except (ValueError, TypeError):
            return
    assert np.isfinite(np.asarray(outputs, dtype=float)).all()
    if not regress:
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-6)

