"""Memmap inputs read from their file batch by batch give what in-memory arrays give."""

import tracemalloc

import numpy as np
import pytest

from s4learn import S4Classifier, S4Regressor, ondisk
from s4learn.ondisk import FileSequences, ScaledSequences

TINY = dict(d_model=8, n_layers=1, d_state=8, max_epochs=2, random_state=0,
            device="cpu")


def sequences(n=120, length=30, channels=2, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 2, n)
    X = rng.randn(n, length, channels) * np.arange(1, channels + 1) + 0.8 * y[:, None, None]
    return (X + 3).astype(np.float32), y


def as_memmap(X, path):
    """X written to an .npy file and opened read-only as a memmap."""
    np.save(path, X)
    return np.load(path, mmap_mode="r")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(ondisk, "CHUNK_BYTES", 3000)  # several chunks per pass


@pytest.mark.parametrize("scaling", ["auto", "column", "channel", "series", "none"])
def test_memmap_fit_and_predict_equal_in_memory(tmp_path, scaling):
    X, y = sequences()
    X_file = as_memmap(X, tmp_path / "x.npy")
    in_memory = S4Classifier(**TINY, scaling=scaling).fit(X, y)
    from_file = S4Classifier(**TINY, scaling=scaling).fit(X_file, y)
    np.testing.assert_allclose(from_file.input_mean_, in_memory.input_mean_, rtol=1e-6)
    np.testing.assert_allclose(from_file.input_scale_, in_memory.input_scale_, rtol=1e-6)
    np.testing.assert_allclose(from_file.predict_proba(X_file), in_memory.predict_proba(X),
                               atol=1e-5)
    assert from_file.input_shape_ == in_memory.input_shape_ == (30, 2)


def test_streamed_statistics_equal_numpy(tmp_path):
    X, _ = sequences(n=57)
    mean, var = FileSequences(as_memmap(X, tmp_path / "x.npy")).column_statistics()
    np.testing.assert_allclose(mean, X.astype(np.float64).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(var, X.astype(np.float64).var(axis=0), rtol=1e-9)


def test_table_memmap_with_columns_in_other_units(tmp_path):
    X, y = sequences(channels=1)
    X = X[..., 0] * np.where(np.arange(30) == 4, 1000.0, 1.0).astype(np.float32)
    X_file = as_memmap(X, tmp_path / "table.npy")
    in_memory = S4Regressor(**TINY).fit(X, y * 1.0)
    from_file = S4Regressor(**TINY).fit(X_file, y * 1.0)
    assert from_file.scaling_ == in_memory.scaling_ == "column"
    np.testing.assert_allclose(from_file.predict(X_file), in_memory.predict(X), atol=1e-4)


def test_channels_first_view_of_a_memmap(tmp_path):
    X, y = sequences()
    channels_first = as_memmap(np.ascontiguousarray(X.transpose(0, 2, 1)), tmp_path / "x.npy")
    view = channels_first[40:100]  # rows of a memmap, read at their own offset
    assert isinstance(FileSequences(view, channels_first=True)[0], np.ndarray)
    clf = S4Classifier(**TINY, layout="NCL").fit(channels_first, y)
    np.testing.assert_allclose(clf.predict_proba(view), clf.predict_proba(
        np.ascontiguousarray(X[40:100].transpose(0, 2, 1))), atol=1e-6)
    with pytest.raises(ValueError, match="layout='NCL'"):
        S4Classifier(**TINY).fit(channels_first, y)


def test_memmap_with_nan_names_the_sequence(tmp_path):
    X, y = sequences()
    X[17, 5, 1] = np.nan
    X_file = as_memmap(X, tmp_path / "x.npy")
    with pytest.raises(ValueError, match="NaN or infinite values in sequence 17"):
        S4Classifier(**TINY).fit(X_file, y)
    clf = S4Classifier(**TINY).fit(np.nan_to_num(X), y)
    with pytest.raises(ValueError, match="NaN or infinite values in sequence 17"):
        clf.predict(X_file)


def test_memmap_with_missing_mask_is_read_into_memory(tmp_path):
    X, y = sequences()
    X[3, 4, 0] = np.nan
    X_file = as_memmap(X, tmp_path / "x.npy")
    in_memory = S4Classifier(**TINY, missing="mask").fit(X, y)
    from_file = S4Classifier(**TINY, missing="mask").fit(X_file, y)
    np.testing.assert_allclose(from_file.predict_proba(X), in_memory.predict_proba(X))


def test_no_copy_of_the_file_is_made(tmp_path):
    # 24 MB in long series: the readout's features (n_samples x 32 statistics of 4
    # channels), a batch of 256 series run for them and one of 32 predicted are no copy
    X, y = sequences(n=2000, length=3000, channels=1)
    X_file = as_memmap(X, tmp_path / "x.npy")
    ondisk.CHUNK_BYTES = 2 ** 16
    # a first fit imports what training imports lazily, which tracemalloc would count
    S4Classifier(**dict(TINY, max_epochs=1)).fit(X[:64], y[:64]).predict(X[:64])
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        clf = S4Classifier(**dict(TINY, d_model=4, max_epochs=1, batch_size=16,
                                  predict_batch_size=32))
        clf.fit(X_file, y)
        clf.predict_proba(X_file)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 4, f"peak numpy memory {peak} of a {X.nbytes}-byte file"


def test_scaled_sequences_index_like_an_array(tmp_path):
    X, _ = sequences(n=10)
    source = FileSequences(as_memmap(X, tmp_path / "x.npy"))
    scaled = ScaledSequences(source, lambda rows: rows * 2)
    np.testing.assert_array_equal(scaled[-1], X[-1] * 2)
    np.testing.assert_array_equal(scaled[np.array([2, 5])], X[[2, 5]] * 2)
    with pytest.raises(IndexError):
        source[10]
