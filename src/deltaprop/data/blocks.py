"""Data stored in blocks of rows, larger than memory: ``.npy`` files, HDF5, Zarr, Parquet.

:class:`Blocks` describes a data set as a sequence of blocks, each a few thousand to
a few million rows (X, y[, sample_weight]) that can be read at once: row ranges of
memory-mapped ``.npy`` files, of HDF5 datasets (``h5py``) or of Zarr arrays (aligned
with their chunks), or the row groups of Parquet files (``pyarrow``). The stores'
own libraries read them; deltaprop has no format of its own.

:class:`~deltaprop.data.sources.BlockSource` is what the training loop reads them
through. An epoch is planned from a seed: a permutation of
the blocks, and a shuffle of the rows inside each buffer of ``buffer_blocks``
consecutive blocks, so that reads stay sequential and memory stays bounded (one
buffer, plus the next one read ahead by a background thread). Rows are converted
to the network's dtype batch by batch. Under data-parallel training the blocks of
each epoch are dealt to the ranks in turn; each rank reads only its own.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading

import numpy as np

Array = np.ndarray

# the default size of a block: a buffer of 4 and the next one read ahead stay near 128 MB
BLOCK_BYTES = 16 * 2**20


class _Arrays:
    """Array-likes (X, y, w) sliceable by rows, opened on first use in each process."""

    def __init__(self, opener, describe: str):
        self._opener, self._arrays, self.describe = opener, None, describe

    def get(self):
        if self._arrays is None:
            self._arrays = self._opener()
        return self._arrays


class _RowRange:
    """Rows [lo, hi) of arrays."""

    def __init__(self, arrays: _Arrays, lo: int, hi: int):
        self.arrays, self.lo, self.hi = arrays, lo, hi
        self.n = hi - lo

    def read(self):
        X, y, w = self.arrays.get()
        return (np.asarray(X[self.lo:self.hi]), np.asarray(y[self.lo:self.hi]),
                None if w is None else np.asarray(w[self.lo:self.hi]))

    def read_targets(self):
        return np.asarray(self.arrays.get()[1][self.lo:self.hi])

    def piece(self, lo: int, hi: int) -> "_RowRange":
        """Rows [lo, hi) of this block."""
        return _RowRange(self.arrays, self.lo + lo, self.lo + hi)

    def __repr__(self):
        return f"rows {self.lo}..{self.hi} of {self.arrays.describe}"


class _GroupCache:
    """The row group of a Parquet file read last: the blocks cut from one row group
    (``block_rows``) read it once, not once each. Shared by the blocks of one file, read
    from the training thread and the read-ahead thread."""

    def __init__(self, path: str):
        self.path, self.key, self.table = path, None, None
        self.lock = threading.Lock()

    def read(self, i: int, columns: list):
        import pyarrow.parquet as pq

        with self.lock:
            if self.key != (i, tuple(columns)):
                self.table = pq.ParquetFile(self.path).read_row_group(i, columns=columns)
                self.key = (i, tuple(columns))
            return self.table


class _RowGroup:
    """Rows [lo, hi) of row group i of a Parquet file (the whole group by default)."""

    def __init__(self, cache: _GroupCache, i: int, n: int, features: list, target, weights, lo: int = 0,
                 hi: int | None = None):
        self.cache, self.path, self.i = cache, cache.path, i
        self.lo, self.hi = lo, n if hi is None else hi
        self.n = self.hi - self.lo
        self.group_rows = n
        self.features, self.target, self.weights = features, target, weights

    def piece(self, lo: int, hi: int) -> "_RowGroup":
        return _RowGroup(self.cache, self.i, self.group_rows, self.features, self.target, self.weights,
                         self.lo + lo, self.lo + hi)

    def read(self, columns=None):
        targets = [self.target] if isinstance(self.target, str) else list(self.target)
        features = self.features if columns is None else []
        table = self.cache.read(self.i, features + targets + ([self.weights] if self.weights and columns is None
                                                              else []))
        if (self.lo, self.hi) != (0, self.group_rows):
            table = table.slice(self.lo, self.n)
        y = np.column_stack([table.column(c).to_numpy() for c in targets])
        y = y[:, 0] if isinstance(self.target, str) else y
        if columns is not None:
            return y
        X = np.column_stack([table.column(c).to_numpy() for c in features])
        w = table.column(self.weights).to_numpy() if self.weights else None
        return X, y, w

    def read_targets(self):
        return self.read(columns="targets")

    def __repr__(self):
        whole = (self.lo, self.hi) == (0, self.group_rows)
        return f"row group {self.i} of {self.path}" + ("" if whole else f", rows {self.lo}..{self.hi}")


def _ranges(arrays: _Arrays, n: int, block_rows: int) -> list:
    return [_RowRange(arrays, lo, min(lo + block_rows, n)) for lo in range(0, n, block_rows)]


def _pieces(part, block_rows: int) -> list:
    """A block cut into blocks of at most ``block_rows`` rows."""
    return [part.piece(lo, min(lo + block_rows, part.n)) for lo in range(0, part.n, block_rows)]


def _block_rows(array, block_rows: int | None) -> int:
    """Rows per block: as asked, else about 16 MB of inputs but at least 16 blocks (so that
    small data sets can be shuffled and held out by blocks too), a multiple of the store's
    chunk rows."""
    if block_rows is not None:
        return int(block_rows)
    n, row_bytes = array.shape[0], max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize)
    want = max(1, min(BLOCK_BYTES // row_bytes, -(-n // 16)))
    chunks = getattr(array, "chunks", None)
    rows = chunks[0] if chunks else 0
    return max(1, want // rows) * rows if rows else want


def _check_names(what: str, arrays: dict, path: str, *names):
    for name in names:
        if name is not None and name not in arrays:
            raise ValueError(f"{what}: {path} has no {name!r}; it holds {', '.join(sorted(arrays)) or 'nothing'}")


class Blocks:
    """A data set as blocks of rows (X, y[, sample_weight]), read one block at a time.

    Make one with :meth:`from_arrays`, :meth:`from_npy`, :meth:`from_hdf5`,
    :meth:`from_zarr`, :meth:`from_parquet`, or :func:`open_blocks` (by path), and pass
    it to :func:`deltaprop.train` (as X, with no y), to ``validation=``, or to an
    estimator's ``partial_fit``. Nothing is read until training asks for a block.

    Attributes
    ----------
    sizes : ndarray of int
        Rows of each block.
    n_samples, n_features : int
    weighted : bool
        Whether the blocks carry sample weights.
    feature_names, target_names : list of str or None
        The columns' names, where the store has them (Parquet).
    """

    def __init__(self, parts: list, n_features: int, weighted: bool, describe: str,
                 feature_names: list | None = None, target_names: list | None = None):
        if not parts:
            raise ValueError(f"{describe}: no rows")
        self.parts = list(parts)
        self.sizes = np.array([p.n for p in self.parts], dtype=np.int64)
        self.n_samples, self.n_features, self.weighted = int(self.sizes.sum()), int(n_features), bool(weighted)
        self.describe = describe
        self.feature_names, self.target_names = feature_names, target_names
        self.transform = self.target_map = None

    def with_preprocessing(self, transform=None, target_map=None) -> "Blocks":
        """The same blocks, with each batch's inputs passed through ``transform`` (in place,
        after conversion to the network's dtype) and each block's targets through
        ``target_map`` (e.g. labels to class indices) before the likelihood encodes them."""
        new = self.subset(range(len(self)))
        new.transform, new.target_map = transform, target_map
        return new

    def __len__(self) -> int:
        return len(self.parts)

    def __repr__(self) -> str:
        return f"Blocks({self.describe}: {self.n_samples} rows x {self.n_features} features in {len(self)} blocks)"

    def read(self, i: int, check=None) -> tuple[Array, Array, Array | None]:
        """Block i as arrays (X, y, w), checked against the description, and by
        ``check(X, name)`` if given (:meth:`Network.check_X`: numbers, finite, within the
        network's dtype), the block named in its errors."""
        X, y, w = self.parts[i].read()
        n = self.parts[i].n
        if X.ndim != 2 or X.shape != (n, self.n_features):
            raise ValueError(f"{self.parts[i]!r}: expected X of shape ({n}, {self.n_features}), found {X.shape}")
        if check is not None:
            check(X, repr(self.parts[i]))
        if len(y) != n or (w is not None and len(w) != n):
            raise ValueError(f"{self.parts[i]!r}: expected {n} targets and weights, found {len(y)}")
        return X, y, w

    def subset(self, ids) -> "Blocks":
        """The blocks ``ids``, in that order."""
        return self._like([self.parts[i] for i in ids])

    def split(self, fraction: float, rng: np.random.Generator, what: str = "validation") -> tuple["Blocks", "Blocks"]:
        """(training blocks, held-out blocks): ``round(fraction * n_samples)`` rows held out,
        in blocks drawn by ``rng``: whole blocks, and the first rows of one more block when
        whole blocks alone would hold out too few (that block's other rows train), so that
        few large blocks never hold out the wrong share. ``what`` names the option in an error."""
        held = int(round(fraction * self.n_samples))
        if not 0 < held < self.n_samples:
            raise ValueError(f"{what}: a fraction of {fraction} of {self.n_samples} rows leaves an empty set")
        perm = rng.permutation(len(self))
        k = int(np.searchsorted(np.cumsum(self.sizes[perm]), held, side="right"))  # whole blocks held out
        short = held - int(self.sizes[perm[:k]].sum())
        held_ids, train_ids = set(perm[:k].tolist()), set(perm[k + (short > 0):].tolist())
        train, test = [], []
        for i, part in enumerate(self.parts):
            if i in held_ids:
                test.append(part)
            elif i in train_ids:
                train.append(part)
            else:  # the block cut in two
                test.append(part.piece(0, short))
                train.append(part.piece(short, part.n))
        return self._like(train), self._like(test)

    def _like(self, parts: list) -> "Blocks":
        new = Blocks(parts, self.n_features, self.weighted, self.describe, self.feature_names, self.target_names)
        new.transform, new.target_map = self.transform, self.target_map
        return new

    def targets(self) -> Array:
        """Every block's y, concatenated (targets are small next to X, which is not read)."""
        return np.concatenate([p.read_targets() for p in self.parts])

    def moments(self, check=None) -> tuple[Array, Array]:
        """Per-column mean and standard deviation of X over every row, in one pass (float64,
        the blocks' means and sums of squares combined by Chan's rule); ``check`` as for
        :meth:`read`."""
        n, mean, m2 = 0, np.zeros(self.n_features), np.zeros(self.n_features)
        for i in range(len(self)):
            X = self.read(i, check)[0].astype(np.float64)
            nb = X.shape[0]
            mb = X.mean(axis=0)
            d = mb - mean
            m2 += ((X - mb) ** 2).sum(axis=0) + d * d * n * nb / (n + nb)
            mean += d * nb / (n + nb)
            n += nb
        return mean, np.sqrt(m2 / n)

    def digest(self) -> str:
        """A fingerprint: the block sizes and the first block's rows and targets."""
        h = hashlib.sha256(self.sizes.tobytes())
        X, y, _ = self.parts[0].read()
        h.update(np.ascontiguousarray(X[:1024]).tobytes())
        h.update(np.ascontiguousarray(y[:1024]).tobytes())
        return h.hexdigest()[:32]

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def from_arrays(cls, X, y, sample_weight=None, block_rows: int | None = None) -> "Blocks":
        """Row ranges of arrays (in memory or memmaps, e.g. ``np.load(path, mmap_mode="r")``)."""
        if np.ndim(X) != 2:
            raise ValueError(f"X: expected a 2-D array (n_samples, n_features), found shape {np.shape(X)}")
        n = X.shape[0]
        if len(y) != n or (sample_weight is not None and len(sample_weight) != n):
            raise ValueError(f"y: expected {n} targets (one per row of X), found {len(y)}")
        arrays = _Arrays(lambda: (X, y, sample_weight), "arrays")
        return cls(_ranges(arrays, n, _block_rows(X, block_rows)), X.shape[1], sample_weight is not None, "arrays")

    @classmethod
    def from_npy(cls, path: str, block_rows: int | None = None) -> "Blocks":
        """A folder of ``.npy`` files, memory-mapped: ``X.npy`` and ``y.npy`` (optional
        ``w.npy``), or pairs ``X_<part>.npy`` / ``y_<part>.npy`` (and ``w_<part>.npy``)."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"data: {path} is not a folder of .npy files")
        xs = sorted(glob.glob(os.path.join(path, "X*.npy")))
        if not xs:
            raise ValueError(f"data: {path} holds no X.npy or X_<part>.npy")
        parts, D, weighted = [], None, None
        for x in xs:
            suffix = os.path.basename(x)[1:]
            y, w = os.path.join(path, "y" + suffix), os.path.join(path, "w" + suffix)
            if not os.path.exists(y):
                raise ValueError(f"data: {x} has no targets {y}")
            w = w if os.path.exists(w) else None
            if weighted is not None and weighted != (w is not None):
                raise ValueError(f"data: {path}: some parts have weights (w*.npy) and others not")
            weighted = w is not None
            X = np.load(x, mmap_mode="r")
            if X.ndim != 2 or (D is not None and X.shape[1] != D):
                raise ValueError(f"data: {x}: expected a 2-D array of {D or 'n'} columns, found shape {X.shape}")
            D = X.shape[1]
            arrays = _Arrays(lambda x=x, y=y, w=w: (np.load(x, mmap_mode="r"), np.load(y, mmap_mode="r"),
                                                    None if w is None else np.load(w, mmap_mode="r")), x)
            parts += _ranges(arrays, X.shape[0], _block_rows(X, block_rows))
        return cls(parts, D, weighted, path)

    @classmethod
    def _from_store(cls, path: str, opener, features: str, target: str, weights: str | None,
                    block_rows: int | None, what: str) -> "Blocks":
        store = opener()
        _check_names(what, store, path, features, target, weights)
        X = store[features]
        if len(X.shape) != 2:
            raise ValueError(f"{what}: {path}:{features}: expected a 2-D array, found shape {X.shape}")
        def open_arrays():  # in each process that reads (a file handle is not shared)
            s = opener()
            return s[features], s[target], None if weights is None else s[weights]

        arrays = _Arrays(open_arrays, f"{path}:{features}")
        return cls(_ranges(arrays, X.shape[0], _block_rows(X, block_rows)), X.shape[1], weights is not None, path)

    @classmethod
    def from_hdf5(cls, path: str, features: str = "X", target: str = "y", weights: str | None = None,
                  block_rows: int | None = None) -> "Blocks":
        """Datasets of an HDF5 file (``h5py``), in blocks of whole chunks."""
        import h5py

        path = os.fspath(path)
        return cls._from_store(path, lambda: h5py.File(path, "r"), features, target, weights, block_rows, "data")

    @classmethod
    def from_zarr(cls, path: str, features: str = "X", target: str = "y", weights: str | None = None,
                  block_rows: int | None = None) -> "Blocks":
        """Arrays of a Zarr group, in blocks of whole chunks."""
        import zarr

        path = os.fspath(path)
        return cls._from_store(path, lambda: zarr.open_group(path, mode="r"), features, target, weights,
                               block_rows, "data")

    @classmethod
    def from_parquet(cls, path: str, features=None, target: str = "y", weights: str | None = None,
                     block_rows: int | None = None) -> "Blocks":
        """A Parquet file, or a folder of them, in blocks of rows of its row groups (``pyarrow``).

        ``features``: the input columns (default: every column but the target and weights);
        ``target``: one column name, or a list of them; ``block_rows``: rows per block,
        cutting the row groups (default: one block per row group, the file's unit of
        reading, as HDF5 and Zarr blocks are whole chunks). A row group cut into several
        blocks is read once for all of them.
        """
        import pyarrow.parquet as pq

        path = os.fspath(path)
        files = sorted(glob.glob(os.path.join(path, "*.parquet"))) if os.path.isdir(path) else [path]
        if not files:
            raise ValueError(f"data: {path} holds no .parquet files")
        parts, names = [], None
        for f in files:
            pf = pq.ParquetFile(f)
            cols = list(pf.schema_arrow.names)
            targets = [target] if isinstance(target, str) else list(target)
            _check_names("data", dict.fromkeys(cols), f, *targets, weights, *(features or []))
            feats = list(features) if features is not None else [c for c in cols if c not in targets and c != weights]
            if names is not None and feats != names:
                raise ValueError(f"data: {f} has other columns than {files[0]}")
            names = feats
            cache = _GroupCache(f)
            parts += [_RowGroup(cache, i, pf.metadata.row_group(i).num_rows, feats, target, weights)
                      for i in range(pf.num_row_groups) if pf.metadata.row_group(i).num_rows]
        if block_rows is not None:
            parts = [piece for part in parts for piece in _pieces(part, int(block_rows))]
        return cls(parts, len(names), weights is not None, path, names,
                   [target] if isinstance(target, str) else list(target))


def open_blocks(path: str, features=None, target=None, weights: str | None = None,
                block_rows: int | None = None) -> Blocks:
    """:class:`Blocks` from a path, by what it is: a folder of ``.npy`` or ``.parquet`` files,
    a ``.parquet`` file, an HDF5 file (``.h5``, ``.hdf5``) or a Zarr store (``.zarr``).

    ``features`` and ``target`` name the arrays (HDF5, Zarr; default ``X`` and ``y``) or the
    columns (Parquet; default: every column but the target, and ``y``).
    """
    path = os.fspath(path)
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext == ".zarr":
        return Blocks.from_zarr(path, features or "X", target or "y", weights, block_rows)
    if ext in (".h5", ".hdf5"):
        return Blocks.from_hdf5(path, features or "X", target or "y", weights, block_rows)
    if ext == ".parquet" or (os.path.isdir(path) and glob.glob(os.path.join(path, "*.parquet"))):
        feats = features.split(",") if isinstance(features, str) else features
        return Blocks.from_parquet(path, feats, target or "y", weights, block_rows)
    if os.path.isdir(path):
        return Blocks.from_npy(path, block_rows)
    raise ValueError(f"data: {path}: expected a folder of .npy or .parquet files, a .parquet, .h5/.hdf5 "
                     "or .zarr path")
