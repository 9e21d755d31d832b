"""Sequences larger than memory: a NumPy memmap read from its file, batch by batch.

A C-contiguous ``np.memmap`` (or ``np.load(..., mmap_mode="r")``) of shape
``(n, L)`` or ``(n, L, C)`` is never loaded whole: :class:`FileSequences` reads the
rows it is asked for with ``os.pread``, so they pass through the page cache without
staying in the process's memory, and :class:`ScaledSequences` standardises each
sample as the data loader asks for it. The scaling statistics come from one pass over
the file in chunks of :data:`CHUNK_BYTES` (:meth:`FileSequences.column_statistics`).
"""

import mmap
import os

import numpy as np

CHUNK_BYTES = 2 ** 25  # bytes of the file read at a time by the statistics pass


def streams_from_file(X):
    """Whether ``X`` is a memmap that :class:`FileSequences` can read from its file.

    It must be a C-contiguous ``np.memmap`` of real numbers, 2-D or 3-D, whose
    contents are those of the file (not opened with ``mode="c"``).
    """
    return (isinstance(X, np.memmap) and X.ndim in (2, 3) and X.flags.c_contiguous
            and X.size > 0 and X.dtype.kind in "biuf" and X.mode != "c"
            and _root_memmap(X) is not None)


def _root_memmap(X):
    """The memmap that owns the file mapping ``X`` views, or None."""
    while isinstance(X, np.ndarray):
        if isinstance(X.base, mmap.mmap):
            return X if isinstance(X, np.memmap) else None
        X = X.base
    return None


class FileSequences:
    """The sequences of a memmap as (n, L, C) float32, read from its file on demand.

    Parameters
    ----------
    X : np.memmap of shape (n, L), (n, L, C) or, with ``channels_first``, (n, C, L)
        A memmap for which :func:`streams_from_file` is True. Only its file name,
        offset, dtype and shape are kept.
    channels_first : bool, default=False
        The rows are stored as (C, L) (aeon's layout) and are transposed when read.

    Attributes
    ----------
    shape : tuple
        ``(n, L, C)`` as the network reads the sequences.
    """

    def __init__(self, X, channels_first=False):
        root = _root_memmap(X)
        self.path = os.fspath(root.filename)
        self.offset = root.offset + (X.ctypes.data - root.ctypes.data)
        self.dtype = X.dtype
        self.row_shape = X.shape[1:] if X.ndim == 3 else (X.shape[1], 1)
        self.channels_first = channels_first
        steps, channels = self.row_shape[::-1] if channels_first else self.row_shape
        self.shape = (X.shape[0], steps, channels)
        self._file = None
        self._statistics = None

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        """Row ``index`` as (L, C) float32; an array of indices gives (k, L, C)."""
        if isinstance(index, (int, np.integer)):
            index = int(index) + len(self) if index < 0 else int(index)
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} is out of range for {len(self)} sequences")
            return self.read(index, index + 1)[0]
        return np.stack([self[i] for i in np.arange(len(self))[index]])

    def read(self, start, stop):
        """Rows ``start`` to ``stop`` as float32 of shape (stop - start, L, C)."""
        row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        data = os.pread(self._fileno(), (stop - start) * row_bytes,
                        self.offset + start * row_bytes)
        rows = np.frombuffer(data, dtype=self.dtype).reshape(-1, *self.row_shape)
        if self.channels_first:
            rows = rows.transpose(0, 2, 1)
        return rows.astype(np.float32)

    def chunks(self):
        """``(start, rows)`` over the whole file, about :data:`CHUNK_BYTES` at a time."""
        row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        step = max(1, CHUNK_BYTES // row_bytes)
        for start in range(0, len(self), step):
            yield start, self.read(start, min(start + step, len(self)))

    def column_statistics(self):
        """Mean and variance of every step and channel, each (L, C) float64.

        One pass over the file, chunk by chunk, merging each chunk's mean and sum of
        squared deviations (Chan et al.'s pairwise update); computed once.

        Raises
        ------
        ValueError
            If the file holds NaN or infinite values.
        """
        if self._statistics is None:
            count, mean, m2 = 0, np.zeros(self.shape[1:]), np.zeros(self.shape[1:])
            for start, rows in self.chunks():
                check_finite(rows, start)
                rows = rows.astype(np.float64)
                rows_mean = rows.mean(axis=0)
                rows_m2 = ((rows - rows_mean) ** 2).sum(axis=0)
                delta, total = rows_mean - mean, count + len(rows)
                mean += delta * len(rows) / total
                m2 += rows_m2 + delta ** 2 * count * len(rows) / total
                count = total
            self._statistics = mean, m2 / count
        return self._statistics

    def _fileno(self):
        if self._file is None:
            self._file = open(self.path, "rb")
        return self._file.fileno()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None  # reopened where it is unpickled (a data-loader worker)
        return state

    def __del__(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()


def check_finite(rows, start):
    """Raise if the rows read from ``start`` on hold NaN or infinity."""
    bad = ~np.isfinite(rows).reshape(len(rows), -1).all(axis=1)
    if bad.any():
        row = start + int(np.argmax(bad))
        raise ValueError(f"X has NaN or infinite values in sequence {row}: a memmap"
                         f" is read from its file only with complete sequences "
                         f"of one length; fill the missing values, or load it into "
                         f"memory (np.asarray) to use missing='mask' or padding")


class ScaledSequences:
    """A :class:`FileSequences` whose samples are standardised as they are read.

    Indexing returns what ``scale`` makes of the rows, so a data loader reads and
    scales one sample at a time; nothing of the size of the file is ever held.

    Parameters
    ----------
    sequences : FileSequences
    scale : callable
        Maps rows (k, L, C) float32 to the network's inputs (k, L, C') float32.
    """

    def __init__(self, sequences, scale):
        self.sequences = sequences
        self.scale = scale
        self.shape = sequences.shape

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, index):
        """Sample ``index`` scaled, (L, C'); an array of indices gives (k, L, C')."""
        rows = self.sequences[index]
        single = rows.ndim == 2
        rows = rows[None] if single else rows
        check_finite(rows, index if single else 0)
        scaled = self.scale(rows)
        return scaled[0] if single else scaled
