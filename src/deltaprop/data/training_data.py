"""A run's data: the rows it trains on and those it validates on, as batch sources.

:class:`TrainingData` takes what :func:`~deltaprop.training.train.train` was given (arrays
and targets, or :class:`~deltaprop.data.blocks.Blocks`, and a validation fraction, pair,
triple or Blocks), checks it against the network, holds rows out when asked to (stratified
by class, :func:`~deltaprop.data.splits.split_validation`), and gives the loop its sources
(:mod:`deltaprop.data.sources`) and the data's fingerprint, which a checkpoint keeps.
Nothing is copied: the held-out rows are read in place, a batch at a time.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_fraction, check_weights
from .blocks import Blocks
from .sources import array_digest, array_source, block_source
from .splits import split_validation

# rows per batch when the validation data is evaluated
VALIDATION_BATCH = 1024


def _is_fraction(validation) -> bool:
    return isinstance(validation, (float, np.floating)) and not isinstance(validation, bool)


class TrainingData:
    """The training and validation sources of one run of ``net``.

    Parameters
    ----------
    net : Network
    X : array-like or Blocks
    y : array-like, or None with Blocks
    sample_weight : array-like, optional
    validation : float, (X_val, y_val), (X_val, y_val, w_val) or Blocks, optional
        As :func:`~deltaprop.training.train.train` takes it.
    batch_size : int or None
        None: the whole training set is one batch.
    buffer_blocks : int
        With Blocks: how many blocks are read and shuffled together.
    rng : numpy Generator
        Draws the held-out rows (or blocks).

    Attributes
    ----------
    source : ArraySource or BlockSource
        The training batches.
    validation : ArraySource or BlockSource or None
        The validation batches (of :data:`VALIDATION_BATCH` rows).
    n_samples : int
        The training rows (held-out rows excluded).
    X, T, train_rows : ndarray or None
        The checked inputs, the encoded targets and the training rows among them (None:
        all of them); X and T are None for Blocks.
    """

    def __init__(self, net, X, y=None, *, sample_weight=None, validation=None, batch_size: int | None = 32,
                 buffer_blocks: int = 4, rng: np.random.Generator):
        self.net = net
        blocks = X if isinstance(X, Blocks) else None
        T = w = train_rows = val_rows = None
        if blocks is not None:
            if y is not None or sample_weight is not None:
                raise TypeError("y, sample_weight: Blocks carry their own targets and weights; pass X=blocks alone")
            X = None
            if _is_fraction(validation):
                check_fraction("validation", validation)
                blocks, validation = blocks.split(float(validation), rng)
        else:
            if y is None:
                raise TypeError("y: expected the targets of X (or X as Blocks, which carry their own)")
            X = net.check_X(X, convert=False)
            T = net.encode_targets(y, X.shape[0])
            w = None if sample_weight is None else check_weights(sample_weight, X.shape[0], members=net.members)
            if _is_fraction(validation):
                check_fraction("validation", validation)
                train_rows, val_rows = split_validation(T, float(validation), rng, net.task == "classification")
        for b in (blocks, validation):
            if isinstance(b, Blocks) and b.n_features != net.sizes[0]:
                raise ValueError(f"X: expected {net.sizes[0]} features (sizes[0]), found {b.n_features} in {b!r}")
        self.X, self.T, self.train_rows, self._w, self._blocks = X, T, train_rows, w, blocks
        self.validation = self._validation_source(validation, val_rows)
        if blocks is not None:
            self.n_samples = blocks.n_samples
        else:
            self.n_samples = X.shape[0] if train_rows is None else len(train_rows)
        B = self.n_samples if batch_size is None else batch_size
        if blocks is not None:
            self.source = block_source(blocks, net, B, buffer_blocks)
        else:
            self.source = array_source(X, T, w, B, net.dtype, rows=train_rows)
        self._digest = None

    def _validation_source(self, validation, val_rows):
        net = self.net
        if val_rows is not None:  # rows held out of X above
            return array_source(self.X, self.T, self._w, VALIDATION_BATCH, net.dtype, rows=val_rows)
        if isinstance(validation, Blocks):
            return block_source(validation, net, VALIDATION_BATCH, 1, prefetch=False)
        if validation is None or _is_fraction(validation):
            return None
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TypeError("validation: expected a fraction, a pair (X_val, y_val), a triple "
                            "(X_val, y_val, sample_weight_val) or Blocks")
        Xv = net.check_X(validation[0], "validation X", convert=False)
        Tv = net.encode_targets(validation[1], Xv.shape[0])
        wv = None
        if len(validation) == 3 and validation[2] is not None:
            wv = check_weights(validation[2], Xv.shape[0], "validation sample_weight", net.members)
        return array_source(Xv, Tv, wv, VALIDATION_BATCH, net.dtype)

    def digest(self) -> str:
        """A fingerprint of the training data (computed once): every target and weight, and a
        fixed sample of at most 1024 evenly spaced rows of X in the network's dtype (cheap
        for data of any size, and it tells other data apart); for blocks, their sizes and the
        first block's rows (:meth:`Blocks.digest`)."""
        if self._digest is None:
            if self._blocks is not None:
                self._digest = self._blocks.digest()
            else:
                self._digest = array_digest(self.X, self.T, self._w, self.net.dtype)
        return self._digest
