"""Holding rows out: the validation split of a training run (:func:`split_validation`,
stratified by class, drawn from the run's seed), and the test rows a model never saw
(:class:`HeldOut`, the rule that draws them again)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import check_fraction, check_int

Array = np.ndarray


def _strata(T: Array) -> Array:
    """The stratum of each row of the encoded targets T: its class, or for several labels
    per row its pattern of labels."""
    labels = np.argmax(T, axis=1) if T.shape[1] > 1 else T[:, 0]
    if T.shape[1] > 1 and not np.all(T.sum(axis=1) == 1):
        labels = np.unique(T, axis=0, return_inverse=True)[1].reshape(-1)
    return labels


def split_validation(T: Array, fraction: float, rng: np.random.Generator, stratify: bool):
    """Indices (train, validation), with ``fraction`` of the rows held out, per class when stratified."""
    n = T.shape[0]
    if stratify:
        labels = _strata(T)
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


def fold_rows(T: Array, k: int, rng: np.random.Generator, stratify: bool) -> list[Array]:
    """The rows of each of ``k`` disjoint folds that together cover every row (sorted
    indices), their sizes within one of each other; per class when stratified: each
    class's rows, shuffled, are dealt to the folds in turn, the deal going on from one
    class to the next."""
    n = T.shape[0]
    k = check_int("k", k, 2)
    if n < k:
        raise ValueError(f"validation: {n} samples cannot make {k} folds")
    labels = _strata(T) if stratify else np.zeros(n)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    fold = np.empty(n, dtype=np.intp)
    start = int(rng.integers(k))
    for idx in groups:
        fold[rng.permutation(idx)] = (start + np.arange(len(idx))) % k
        start = (start + len(idx)) % k
    return [np.flatnonzero(fold == m) for m in range(k)]


@dataclass(frozen=True)
class HeldOut:
    """The rows a model never trained on, as the rule that draws them again from the same data.

    A model trained on part of a data set records this (:attr:`deltaprop.Model.held_out`,
    saved in its file), so that its test rows can be found later (``deltaprop evaluate
    --held-out``), in Python as on the command line.

    Parameters
    ----------
    fraction : float
        The share of the rows held out, in (0, 1).
    seed : int
        Draws them (the same seed and data give the same rows). ``deltaprop train`` draws a
        generated data set (:func:`~deltaprop.load_data` of ``xor``, ``moons``...) with the
        same seed, so that ``evaluate --held-out`` and ``explain`` make the same rows again.
    block_rows : int, optional
        For data read in blocks: the rows per block it was cut into (whole blocks are held
        out, so the same cut finds them again).
    """

    fraction: float
    seed: int = 0
    block_rows: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "fraction", check_fraction("held_out.fraction", self.fraction))
        object.__setattr__(self, "seed", check_int("held_out.seed", self.seed, 0))
        if self.block_rows is not None:
            object.__setattr__(self, "block_rows", check_int("held_out.block_rows", self.block_rows, 1))

    def split(self, X, y=None, *, stratify: bool = False, name: str = "the data", advice: str | None = None):
        """The training part and the held-out part of the data.

        Arrays are split by scikit-learn's ``train_test_split`` with ``random_state=seed``;
        with ``stratify``, per class (each class keeps its share: every class needs at
        least 2 rows). Blocks hold whole blocks out (:meth:`Blocks.split`).

        Parameters
        ----------
        X : array-like or Blocks
            The rows (or Blocks, which carry their targets).
        y : array-like, optional
            The targets of X.
        stratify : bool
            Split each class of ``y`` (one label per row) in the same proportion.
        name : str
            The data's name, in errors.
        advice : str, optional
            What an error about a class of a single row suggests.

        Returns
        -------
        tuple
            (X_train, X_test, y_train, y_test) for arrays, (train, test) for Blocks.

        Raises
        ------
        ValueError
            If a class has a single row (``stratify``), or the fraction leaves a part empty.
        """
        from .blocks import Blocks

        if isinstance(X, Blocks):
            return X.split(self.fraction, np.random.default_rng(self.seed), name)
        from sklearn.model_selection import train_test_split

        labels = np.asarray(y) if stratify else None
        if labels is not None:
            if labels.ndim != 1:  # several labels per row: split as they come
                labels = None
            else:
                classes, counts = np.unique(labels, return_counts=True)
                if counts.min() < 2:
                    rare = [str(c) for c in classes[counts < 2]]
                    advice = advice or ("remove those rows, or check the targets; integers that count or "
                                        "measure are a regression: a gaussian or poisson likelihood")
                    raise ValueError(
                        f"class{'es' if len(rare) > 1 else ''} {', '.join(map(repr, rare[:5]))} of {name} "
                        f"{'have' if len(rare) > 1 else 'has'} a single row; a test split that keeps every class "
                        f"needs at least 2 rows of each ({advice})")
        try:
            return train_test_split(X, y, test_size=self.fraction, random_state=self.seed, stratify=labels)
        except ValueError as e:
            raise ValueError(f"{self.fraction:g} of {name}: {e}") from None

    def to_config(self) -> dict:
        return {"fraction": self.fraction, "seed": self.seed, "block_rows": self.block_rows}

    @classmethod
    def from_config(cls, config: dict) -> "HeldOut":
        if not isinstance(config, dict) or set(config) - {"fraction", "seed", "block_rows"}:
            raise ValueError(f"held_out: expected fraction, seed and block_rows, found {config!r}")
        return cls(**config)
