"""Data sources: where the training loop's batches come from.

A source knows how many rows it has and gathers the rows of one batch into the
buffers of a :class:`~deltaprop.core.engine.Workspace` (``ws.X``, ``ws.T``,
``ws.w``), in an order the loop chose. It never copies the data set: rows are
gathered from the caller's arrays (in memory or memory-mapped) straight into
buffers that were allocated once, and converted to the network's dtype there,
batch by batch (a uint8 memmap stays uint8 on disk and in memory).

Every source has the same small interface, which the training loop uses:

- ``n_samples``, ``batch_size`` (rows of a whole batch, over all ranks);
- ``shard(rank, size)``: from now on, :meth:`fill` gathers only this rank's part of
  each batch (data-parallel training); every rank takes the same number of steps;
- ``order(rng)``: the plan of one epoch (an int64 array the checkpoint keeps), drawn
  from ``rng`` (None: in storage order);
- ``check_order(order)``: raise ValueError unless ``order`` is a plan of this source;
- ``steps(order)``: the number of batches (steps) of that epoch;
- ``fill(ws, order, k)``: gather this rank's part of batch k into ``ws``.

:class:`ArraySource` serves arrays; :class:`BlockSource` serves
:class:`~deltaprop.data.blocks.Blocks`, data stored in blocks (``.npy`` files, HDF5, Zarr, Parquet).
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from ..validation import is_sparse

if TYPE_CHECKING:
    from .blocks import Blocks

Array = np.ndarray


def memory_mapped(a) -> bool:
    """Whether ``a`` is, or views, a memory-mapped file (``np.asarray`` of a memmap is a
    plain ndarray whose base is the map)."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def part_of(b: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [lo, hi) of a batch of b rows that rank ``rank`` of ``size`` takes (sizes differ by one at most)."""
    return b * rank // size, b * (rank + 1) // size


class ArraySource:
    """Rows of arrays: inputs X (n, D), encoded targets T (n, K), optional weights w (n,).

    Parameters
    ----------
    X : ndarray of shape (n, D)
        In memory, converted to ``dtype`` once if it is not already (no copy when it
        is); a memmap (``np.memmap`` or ``np.load(..., mmap_mode="r")``) is read as it
        is, its rows converted batch by batch.
    T : ndarray of shape (n, K)
        Targets as :meth:`Network.encode_targets` returns them.
    w : ndarray of shape (n,), optional
        Sample weights.
    batch_size : int
        Rows per batch; the last batch of an epoch may be shorter.
    dtype : numpy dtype
        The training dtype.
    rows : ndarray of int, optional
        Use only these rows (e.g. the training rows of a held-out split), without copying them.
    """

    def __init__(self, X: Array, T: Array, w: Array | None, batch_size: int, dtype, rows: Array | None = None):
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.n_samples = X.shape[0] if self.rows is None else len(self.rows)
        self.batch_size = min(int(batch_size), self.n_samples)
        self.n_batches = -(-self.n_samples // self.batch_size)
        self.rank, self.size = 0, 1
        self.dtype = np.dtype(dtype)
        # a single batch is copied (and converted) into the workspace once, and a memmap
        # is read as it is: no copy of the data here
        whole = self.n_batches == 1 and self.rows is None
        self.X = self._own(X, dtype, whole)
        convert = (lambda a: a) if whole else (lambda a: np.ascontiguousarray(a, dtype=dtype))
        self.T = convert(T)
        self.w = None if w is None else convert(w)
        self.weighted = w is not None
        self._stage = self._idx = None
        self._whole = whole

    sparse = False  # (the workspace it fills needs room for dense inputs)

    def _own(self, X, dtype, whole: bool):
        """X as batches read it: converted to the training dtype once (no copy when it is),
        but a single batch (copied into the workspace once) and a memmap (read as it is)."""
        return X if whole or memory_mapped(X) else np.ascontiguousarray(X, dtype=dtype)

    def shard(self, rank: int, size: int) -> None:
        """Gather only rank ``rank``'s part of every batch from now on."""
        self.rank, self.size = int(rank), int(size)
        self._whole = self._whole and size == 1

    def order(self, rng: np.random.Generator | None) -> Array:
        """The order of the rows for one epoch: a permutation drawn from ``rng``, or 0..n-1
        (always for a single batch, whose gradient does not depend on the order)."""
        if rng is None or self.n_batches == 1:
            return np.arange(self.n_samples)
        return rng.permutation(self.n_samples)

    def check_order(self, order: Array) -> None:
        n = self.n_samples
        if order.dtype != np.int64 or order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError(f"order: expected a permutation of the {n} training rows")

    def steps(self, order: Array) -> int:
        return self.n_batches

    def fill(self, ws, order: Array, k: int) -> int:
        """Gather this rank's part of batch k of an epoch in ``order`` into ``ws`` and make it
        the passes' inputs (:meth:`~deltaprop.core.engine.Workspace.upload`); return its rows."""
        b = self._fill(ws, order, k)
        ws.upload(b, inputs=ws.Xs is None)
        return b

    def _fill(self, ws, order: Array, k: int) -> int:
        start = k * self.batch_size
        b = min(self.batch_size, self.n_samples - start)
        ws.weighted = self.w is not None
        ws.per_member = ws.weighted and self.w.ndim == 2  # (an ensemble's weights, a column a member)
        weights = ws.mw if ws.per_member else ws.w
        ws.Xs = None
        if self._whole:
            ws.n = b
            self._put_all(ws, b)
            np.copyto(ws.T[:b], self.T)
            if ws.weighted:
                np.copyto(weights[:b], self.w)
            return b
        if self._idx is None:  # allocated once, at the first batch
            self._idx = np.empty(self.batch_size, dtype=np.int64)
        lo, hi = part_of(b, self.rank, self.size)
        b = ws.n = hi - lo
        idx = order[start + lo:start + hi]
        if self.rows is not None:
            idx = np.take(self.rows, idx, out=self._idx[:b])
        self._gather(ws, idx, b)
        np.take(self.T, idx, axis=0, out=ws.T[:b], mode="clip")
        if ws.weighted:
            np.take(self.w, idx, axis=0, out=weights[:b], mode="clip")
        return b

    def _put_all(self, ws, b: int) -> None:
        np.copyto(ws.X[:b], self.X)

    def _gather(self, ws, idx: Array, b: int) -> None:
        """The rows ``idx`` of X into the batch's inputs."""
        gather = None if ws.ops is None else ws.ops.gather
        if gather is not None:  # one pass, straight into ws.X (through h[0], its contiguous whole)
            gather(self.X, idx, ws.h[0][:b])
            return
        if self._stage is None:
            # np.take into the strided ws.X would be buffered: gather into a contiguous stage first
            self._stage = np.empty((self.batch_size, self.X.shape[1]), dtype=self.X.dtype)
        np.take(self.X, idx, axis=0, out=self._stage[:b], mode="clip")
        np.copyto(ws.X[:b], self._stage[:b])


class SparseSource(ArraySource):
    """Rows of a SciPy sparse matrix X (n, D), with T and w as for :class:`ArraySource`.

    X is kept as CSR in the training dtype; each batch's rows are picked into a small CSR
    matrix (``ws.Xs``) that layer 1 reads as it is: the inputs are never densified.
    """

    sparse = True

    def _own(self, X, dtype, whole: bool):
        return X.tocsr().astype(dtype, copy=False)

    def _put_all(self, ws, b: int) -> None:
        ws.Xs = self.X

    def _gather(self, ws, idx: Array, b: int) -> None:
        ws.Xs = self.X[idx]


def array_source(X, T: Array, w: Array | None, batch_size: int, dtype, rows: Array | None = None) -> ArraySource:
    """The source for rows in memory: :class:`SparseSource` for a sparse X, else :class:`ArraySource`."""
    cls = SparseSource if is_sparse(X) else ArraySource
    return cls(X, T, w, batch_size, dtype, rows)


def array_digest(X, T: Array, w, dtype) -> str:
    """A fingerprint of training data in arrays, so that a checkpoint is not resumed on
    other data: every target and weight, and a fixed sample of at most 1024 evenly
    spaced rows of X in the network's dtype (cheap for data of any size, and it tells
    other data apart)."""
    h = hashlib.sha256()
    step = max(1, X.shape[0] // 1024)
    sample = X[::step]
    if is_sparse(sample):  # its stored values and where they are
        sample = sample.tocsr()
        for part in (sample.indptr, sample.indices):
            h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        sample = sample.data
    h.update(np.ascontiguousarray(sample, dtype=dtype).tobytes())
    h.update(np.ascontiguousarray(T).tobytes())
    if w is not None:
        h.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


class _Buffer:
    """The rows of one buffer of blocks: raw X, encoded T, w, and their shuffled order."""

    def __init__(self, X, T, w, perm):
        self.X, self.T, self.w, self.perm = X, T, w, perm


class BlockSource:
    """Batches from :class:`Blocks`, for the training loop (the interface of
    :mod:`deltaprop.data.sources`).

    Parameters
    ----------
    blocks : Blocks
    batch_size : int
        Rows per batch, over all ranks.
    dtype : numpy dtype
        The network's dtype; rows are converted to it batch by batch.
    encode : callable
        ``encode(y, n) -> T``: a block's raw targets as the likelihood wants them.
    transform : callable, optional
        ``transform(X)``: in place on a batch's converted inputs (e.g. standardization).
    check : callable, optional
        ``check(X, name)``: raises for a block's inputs the network cannot take
        (:meth:`Network.check_X`).
    buffer_blocks : int
        Blocks per shuffle buffer: rows are shuffled among this many blocks.
    prefetch : bool
        Read the next buffer in a background thread while this one is used.
    """

    sparse = False

    def __init__(self, blocks: Blocks, batch_size: int, dtype, encode, transform=None,
                 buffer_blocks: int = 4, prefetch: bool = True, check=None):
        self.blocks, self.encode, self.transform, self.check = blocks, encode, transform, check
        self.n_samples = blocks.n_samples
        self.batch_size = min(int(batch_size), self.n_samples)
        self.dtype = np.dtype(dtype)
        self.buffer_blocks = int(buffer_blocks)
        self.weighted = blocks.weighted
        self.rank, self.size = 0, 1
        self._pool = ThreadPoolExecutor(max_workers=1) if prefetch else None
        self._plan_of = self._plan_order = None
        self._loaded: dict[int, object] = {}
        self._stage = self._x_dtype = None

    def shard(self, rank: int, size: int) -> None:
        if self.batch_size < size:
            raise ValueError(f"batch_size: {self.batch_size} rows cannot be shared by {size} processes")
        self.rank, self.size = int(rank), int(size)
        self._plan_of = self._plan_order = None

    def local_batch(self) -> int:
        lo, hi = part_of(self.batch_size, self.rank, self.size)
        return hi - lo

    def order(self, rng: np.random.Generator | None) -> Array:
        """The epoch's plan: a seed for the row shuffles (-1: none), then the block order."""
        if rng is None:
            return np.concatenate([[-1], np.arange(len(self.blocks))]).astype(np.int64)
        seed = int(rng.integers(2**62))
        return np.concatenate([[seed], rng.permutation(len(self.blocks))]).astype(np.int64)

    def check_order(self, order: Array) -> None:
        n = len(self.blocks)
        if order.dtype != np.int64 or order.shape != (n + 1,) or order[0] < -1 \
                or not np.array_equal(np.sort(order[1:]), np.arange(n)):
            raise ValueError(f"order: expected a shuffle seed and a permutation of the {n} blocks")

    def _plan(self, order: Array):
        """This rank's buffers for an epoch: their block ids and first stream rows (planned
        once per epoch: every batch of the epoch passes the same ``order`` object)."""
        if order is self._plan_order:
            return self._groups, self._starts
        key = order.tobytes()
        self._plan_order = order
        if self._plan_of != key:
            self._drop()
            mine = order[1:][self.rank::self.size]
            groups = [mine[i:i + self.buffer_blocks] for i in range(0, len(mine), self.buffer_blocks)]
            starts = np.cumsum([0] + [int(self.blocks.sizes[g].sum()) for g in groups])
            # every rank takes as many steps as the rank that needs the most
            steps = 1
            for r in range(self.size):
                rows = int(self.blocks.sizes[order[1:][r::self.size]].sum())
                lo, hi = part_of(self.batch_size, r, self.size)
                steps = max(steps, -(-rows // (hi - lo)))
            self._plan_of, self._groups, self._starts, self._steps = key, groups, starts, steps
            self._seed = int(order[0])
        return self._groups, self._starts

    def steps(self, order: Array) -> int:
        self._plan(order)
        return self._steps

    def _read(self, g: int) -> _Buffer:
        ids = self._groups[g]
        parts = [self.blocks.read(int(i), self.check) for i in ids]
        X = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        if self._x_dtype is None:  # (the first read is never in the background)
            self._x_dtype = X.dtype
            self._stage = np.empty((self.batch_size, self.blocks.n_features), dtype=X.dtype)
        X = X.astype(self._x_dtype, copy=False)  # blocks stored in another dtype than the first
        y = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
        T = self.encode(y, X.shape[0])
        w = None if not self.blocks.weighted else np.concatenate([p[2] for p in parts]).astype(self.dtype)
        if self._seed < 0:
            perm = np.arange(X.shape[0])
        else:
            perm = np.random.default_rng([self._seed, self.rank, g]).permutation(X.shape[0])
        return _Buffer(X, T, w, perm)

    def _buffer(self, g: int) -> _Buffer:
        buf = self._loaded.get(g)
        if buf is None:
            self._drop()
            buf = self._read(g)
        elif not isinstance(buf, _Buffer):
            buf = buf.result()
        # keep this buffer and the next one (being read), nothing else
        self._loaded = {g: buf}
        if g + 1 < len(self._groups):
            nxt = self._pool.submit(self._read, g + 1) if self._pool is not None else None
            if nxt is not None:
                self._loaded[g + 1] = nxt
        return buf

    def _drop(self) -> None:
        for v in self._loaded.values():
            if not isinstance(v, _Buffer):
                v.cancel()
        self._loaded = {}

    def fill(self, ws, order: Array, k: int) -> int:
        """Gather this rank's part of batch k into ``ws`` and make it the passes' inputs;
        return its rows (0 when this rank's blocks are used up before the others')."""
        groups, starts = self._plan(order)
        b = self.local_batch()
        total = int(starts[-1])
        start = k * b
        n = max(0, min(b, total - start))
        ws.n, ws.weighted, ws.per_member, ws.Xs = n, self.blocks.weighted, False, None
        pos = 0
        while pos < n:
            g = bisect.bisect_right(starts, start + pos) - 1
            buf = self._loaded.get(g)
            buf = buf if isinstance(buf, _Buffer) else self._buffer(g)
            a = start + pos - int(starts[g])
            take = min(n - pos, len(buf.perm) - a)
            idx = buf.perm[a:a + take]
            np.take(buf.X, idx, axis=0, out=self._stage[pos:pos + take])
            np.take(buf.T, idx, axis=0, out=ws.T[pos:pos + take])
            if ws.weighted:
                np.take(buf.w, idx, out=ws.w[pos:pos + take])
            pos += take
        if n:
            np.copyto(ws.X[:n], self._stage[:n], casting="unsafe")
            if self.transform is not None:
                self.transform(ws.X[:n])
        ws.upload(n)
        return n

    def close(self) -> None:
        """Stop reading ahead."""
        self._drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def block_check(net):
    """``check(X, name)`` for :class:`~deltaprop.data.blocks.Blocks`: the network's own input
    check, naming the block."""
    return lambda X, name: net.check_X(X, name, convert=False)


def block_source(blocks: "Blocks", net, batch_size: int, buffer_blocks: int = 4,
                 prefetch: bool = True) -> BlockSource:
    """The :class:`BlockSource` of ``blocks`` for ``net``: each block's targets encoded for its
    likelihood (after the blocks' own target map), its inputs checked and transformed."""
    target_map = blocks.target_map

    def encode(y, n):
        return net.encode_targets(y if target_map is None else target_map(y), n)

    return BlockSource(blocks, batch_size, net.dtype, encode, blocks.transform, buffer_blocks, prefetch,
                       check=block_check(net))
