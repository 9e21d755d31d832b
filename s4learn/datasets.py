"""Data sets as numpy arrays ready for :class:`S4Classifier` / :class:`S4Regressor`.

- :func:`load_digits_images`: scikit-learn's 8x8 handwritten digits, embedded, no download;
- :func:`load_mnist`, :func:`load_cifar10`: the torchvision data sets, read from (or
  downloaded to) a root folder in torchvision's own layout (the optional extra
  ``s4learn[vision]``);
- :func:`load_ucr`: a data set of the UCR/UEA time series classification archive, through
  aeon (the optional extra ``s4learn[timeseries]``);
- :func:`load_table`: a ``.csv`` or ``.parquet`` file as a DataFrame (``.parquet`` needs
  pyarrow, the optional extra ``s4learn[parquet]``);
- :func:`make_deep_s4_regression`: the synthetic fine-tuning task of Galim et al. (2025).

Images come back as ``uint8`` arrays ``(n, H, W)`` or ``(n, H, W, C)`` and labels as
``int64``; pass images to the estimators with ``input_type="image"``.
"""

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .extras import import_extra
from .inputs import LUMINANCE_WEIGHTS

TABLE_SUFFIXES = (".csv", ".parquet")
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_digits_images():
    """The 1797 handwritten digits of :func:`sklearn.datasets.load_digits` as images.

    Returns
    -------
    X : ndarray of shape (1797, 8, 8), uint8
        Pixel intensities from 0 to 16.
    y : ndarray of shape (1797,), int64
        The digit shown, 0 to 9.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.int64)


def load_mnist(root, train=True, download=False):
    """MNIST handwritten digits through :class:`torchvision.datasets.MNIST`.

    Parameters
    ----------
    root : str or path
        Folder holding ``MNIST/raw`` with the IDX files (plain or ``.gz``).
    train : bool, default=True
        The 60000 training images, else the 10000 test images.
    download : bool, default=False
        Download the files into ``root`` when they are missing.

    Returns
    -------
    X : ndarray of shape (n, 28, 28), uint8
    y : ndarray of shape (n,), int64
    """
    MNIST = import_extra("torchvision.datasets", "vision", "load_mnist").MNIST
    _extract_gzipped_idx(Path(root) / "MNIST" / "raw")
    dataset = _open_torchvision(MNIST, root, train, download)
    return dataset.data.numpy(), dataset.targets.numpy().astype(np.int64)


def load_cifar10(root, train=True, download=False, grayscale=False):
    """CIFAR-10 colour images through :class:`torchvision.datasets.CIFAR10`.

    Parameters
    ----------
    root : str or path
        Folder holding ``cifar-10-batches-py`` (the extracted python batches).
    train : bool, default=True
        The 50000 training images, else the 10000 test images.
    download : bool, default=False
        Download and extract the archive into ``root`` when it is missing.
    grayscale : bool, default=False
        Return one luminance channel ``(n, 32, 32)`` instead of RGB ``(n, 32, 32, 3)``.

    Returns
    -------
    X : ndarray of shape (n, 32, 32, 3) or (n, 32, 32), uint8
    y : ndarray of shape (n,), int64
    """
    CIFAR10 = import_extra("torchvision.datasets", "vision", "load_cifar10").CIFAR10
    dataset = _open_torchvision(CIFAR10, root, train, download)
    X = np.asarray(dataset.data, dtype=np.uint8)
    if grayscale:
        luminance = X @ np.array(LUMINANCE_WEIGHTS)
        X = np.clip(np.rint(luminance), 0, 255).astype(np.uint8)
    return X, np.asarray(dataset.targets, dtype=np.int64)


def load_ucr(name, split="train", extract_path=None):
    """A data set of the UCR/UEA time series classification archive, through aeon.

    Delegates to :func:`aeon.datasets.load_classification`: the data sets that ship with
    aeon (e.g. ``"GunPoint"``, ``"ItalyPowerDemand"``, ``"OSULeaf"``,
    ``"JapaneseVowels"``) load offline; aeon downloads the others into its data folder.

    Parameters
    ----------
    name : str
        Name of the data set in the archive, e.g. ``"GunPoint"``.
    split : {"train", "test"}, default="train"
        The archive's own training or test split.
    extract_path : str or path, default=None
        Folder to read the data set from, or download it into, instead of aeon's own
        folders (aeon then looks for its shipped data sets there too).

    Returns
    -------
    X : ndarray of shape (n, length, channels), float, or list of n ndarrays
        The series, time along the second axis; a list of ``(length_i, channels)``
        arrays when the lengths differ.
    y : ndarray of shape (n,)
        The class labels as the archive gives them (strings).

    Raises
    ------
    ImportError
        When aeon is not installed (the extra ``s4learn[timeseries]``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    load_classification = import_extra("aeon.datasets", "timeseries",
                                       "load_ucr").load_classification
    path = None if extract_path is None else str(extract_path)
    X, y = load_classification(name, split=split, extract_path=path)
    # aeon's layout is (n, channels, length) per collection or per series
    if isinstance(X, np.ndarray):
        return np.ascontiguousarray(X.transpose(0, 2, 1)), y
    return [np.ascontiguousarray(series.T) for series in X], y


def load_table(path):
    """Read a ``.csv`` or ``.parquet`` file into a DataFrame.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When the suffix is neither ``.csv`` nor ``.parquet``, or the file cannot be read
        or holds no rows.
    ImportError
        For a ``.parquet`` file when pyarrow is not installed (the extra
        ``s4learn[parquet]``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: expected a .csv or .parquet file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".parquet":
        import_extra("pyarrow", "parquet", "reading .parquet files")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as error:  # the readers raise many types for a bad file
        raise ValueError(f"{path}: cannot read the file as {suffix[1:]}: {error}") from None
    if frame.empty:
        raise ValueError(f"{path}: the file holds no rows")
    return frame


def make_deep_s4_regression(n_samples=1000, seq_len=64, d_model=8, n_outputs=1,
                            target_n_layers=1, target_d_state=4, frozen_n_layers=2,
                            frozen_d_state=16, noise=0.0, random_state=None):
    """Regress the output of a random deep S4 network; a second one is the base model.

    The synthetic experiment of Galim et al. (2025), "Parameter-Efficient Fine-Tuning
    of State Space Models": a randomly initialised target network (``target_n_layers``
    S4D layers of state size ``target_d_state``) maps standard normal sequences to
    outputs, and another random network (``frozen_n_layers``, ``frozen_d_state``, the
    same width) is the pretrained model to fine-tune into the target. Both are
    :class:`s4learn.nn.S4Model` with mean pooling and no dropout.

    Parameters
    ----------
    n_samples, seq_len : int, default=1000, 64
        Number and length of the input sequences.
    d_model : int, default=8
        Channels of the inputs and width of both networks.
    n_outputs : int, default=1
        Outputs of the target; ``y`` is 1-D when 1.
    target_n_layers, target_d_state : int, default=1, 4
        Depth and state size of the target network.
    frozen_n_layers, frozen_d_state : int, default=2, 16
        Depth and state size of the base network.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to ``y``.
    random_state : int, RandomState instance or None, default=None
        Seeds the inputs, both networks and the noise.

    Returns
    -------
    X : ndarray of shape (n_samples, seq_len, d_model), float32
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
        Target outputs, standardised to mean 0 and variance 1 per output before the
        noise is added.
    base : S4Model
        The network to fine-tune, in eval mode.
    """
    import torch
    from sklearn.utils import check_random_state

    from .nn import S4Model
    from .training import MAX_SEED

    rng = check_random_state(random_state)
    X = rng.standard_normal((n_samples, seq_len, d_model)).astype(np.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.randint(MAX_SEED)))
        networks = [S4Model(d_model, n_outputs, d_model=d_model, n_layers=n_layers,
                            d_state=d_state, dropout=0.0).eval()
                    for n_layers, d_state in ((target_n_layers, target_d_state),
                                              (frozen_n_layers, frozen_d_state))]
    target, base = networks
    with torch.no_grad():
        y = target(torch.from_numpy(X)).double().numpy()
    y = (y - y.mean(axis=0)) / y.std(axis=0)
    y = y + noise * rng.standard_normal(y.shape)
    return X, (y.ravel() if n_outputs == 1 else y), base


def _open_torchvision(dataset_class, root, train, download):
    try:
        return dataset_class(root=str(root), train=train, download=download)
    except RuntimeError as error:
        raise FileNotFoundError(f"{dataset_class.__name__} not found or corrupt under "
                                f"{root}: {error}") from None


def _extract_gzipped_idx(raw_folder):
    """Unpack ``*.gz`` IDX files that lack their plain copy (torchvision reads plain)."""
    for name in _MNIST_FILES:
        plain, packed = raw_folder / name, raw_folder / f"{name}.gz"
        if packed.is_file() and not plain.is_file():
            partial = plain.with_suffix(".partial")
            with gzip.open(packed, "rb") as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
            os.replace(partial, plain)
