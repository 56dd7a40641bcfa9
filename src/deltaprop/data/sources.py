"""Data sources: where the training loop's batches come from.

A source knows how many rows it has and gathers the rows of one batch into the
buffers of a :class:`~deltaprop.core.engine.Workspace` (``ws.X``, ``ws.T``,
``ws.w``), in an order the loop chose. It never copies the data set: rows are
gathered from the caller's arrays (in memory or memory-mapped) straight into
buffers that were allocated once.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


class ArraySource:
    """Rows of arrays: inputs X (n, D), encoded targets T (n, K), optional weights w (n,).

    Parameters
    ----------
    X : ndarray of shape (n, D)
        Converted to ``dtype`` once if it is not already (no copy when it is).
    T : ndarray of shape (n, K)
        Targets as :meth:`Network.encode_targets` returns them.
    w : ndarray of shape (n,), optional
        Sample weights.
    batch_size : int
        Rows per batch; the last batch of an epoch may be shorter.
    dtype : numpy dtype
        The training dtype.
    """

    def __init__(self, X: Array, T: Array, w: Array | None, batch_size: int, dtype):
        self.n_samples = X.shape[0]
        self.batch_size = min(int(batch_size), self.n_samples)
        self.n_batches = -(-self.n_samples // self.batch_size)
        # a single batch is copied (and converted) into the workspace once: no copy here
        convert = (lambda a: a) if self.n_batches == 1 else (lambda a: np.ascontiguousarray(a, dtype=dtype))
        self.X, self.T = convert(X), convert(T)
        self.w = None if w is None else convert(w)
        # np.take into the strided ws.X would be buffered: gather into a contiguous stage first
        # (full batch: rows in order, copied as they are, no stage)
        self._stage = np.empty((self.batch_size, self.X.shape[1]), dtype=dtype) if self.n_batches > 1 else None

    def order(self, rng: np.random.Generator | None) -> Array:
        """The order of the rows for one epoch: a permutation drawn from ``rng``, or 0..n-1
        (always for a single batch, whose gradient does not depend on the order)."""
        if rng is None or self.n_batches == 1:
            return np.arange(self.n_samples)
        return rng.permutation(self.n_samples)

    def fill(self, ws, order: Array, k: int) -> int:
        """Gather batch k of an epoch in ``order`` into ``ws``; return its number of rows."""
        start = k * self.batch_size
        b = min(self.batch_size, self.n_samples - start)
        ws.weighted = self.w is not None
        ws.n = b
        if self._stage is None:
            np.copyto(ws.X[:b], self.X)
            np.copyto(ws.T[:b], self.T)
            if ws.weighted:
                np.copyto(ws.w[:b], self.w)
            return b
        idx = order[start:start + b]
        np.take(self.X, idx, axis=0, out=self._stage[:b], mode="clip")
        np.copyto(ws.X[:b], self._stage[:b])
        np.take(self.T, idx, axis=0, out=ws.T[:b], mode="clip")
        if ws.weighted:
            np.take(self.w, idx, out=ws.w[:b], mode="clip")
        return b
