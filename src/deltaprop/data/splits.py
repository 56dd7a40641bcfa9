"""Holding rows out: the validation split of a training run, stratified by class."""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def split_validation(T: Array, fraction: float, rng: np.random.Generator, stratify: bool):
    """Indices (train, validation), with ``fraction`` of the rows held out, per class when stratified."""
    n = T.shape[0]
    if stratify:
        labels = np.argmax(T, axis=1) if T.shape[1] > 1 else T[:, 0]
        if T.shape[1] > 1 and not np.all(T.sum(axis=1) == 1):  # several labels per row: by label pattern
            labels = np.unique(T, axis=0, return_inverse=True)[1].reshape(-1)
        val = []
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            val.append(idx[: int(round(fraction * len(idx)))])
        val = np.sort(np.concatenate(val))
    else:
        val = np.sort(rng.permutation(n)[: int(round(fraction * n))])
    if len(val) == 0 or len(val) == n:
        raise ValueError(f"validation: a fraction of {fraction} of {n} samples leaves an empty set")
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val
