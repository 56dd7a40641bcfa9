"""From raw data to what a network sees, and back: one place for each rule.

- :class:`Standardizer`: per-column (x - mean) / scale, for inputs and for Gaussian
  targets, fitted on training data and saved with the model.
- :func:`encode_labels`: class labels of any type to indices 0..K-1 and back.
- :func:`infer_task` and :func:`choose_output`: which likelihood and how many
  outputs a target calls for, including the binary-Bernoulli decision (two
  classes are one sigmoid output, not two softmax outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.likelihoods import get_likelihood
from ..validation import check_values, describe_rows

__all__ = ["Standardizer", "check_targets", "choose_output", "encode_labels", "infer_task"]

Array = np.ndarray


@dataclass
class Standardizer:
    """Per-column ``(x - mean) / scale``; columns with no spread keep scale 1.

    Attributes
    ----------
    mean, scale : ndarray of shape (n_columns,), float64
    """

    mean: Array
    scale: Array

    @classmethod
    def fit(cls, X) -> "Standardizer":
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(len(X), -1)
        big = np.abs(X).max(axis=0) if len(X) else np.zeros(X.shape[1])
        if np.all(big < 1e150):
            return cls.from_moments(X.mean(axis=0), X.std(axis=0))
        # the moments of X / max|X|, scaled back: the squares of values this large overflow
        big = np.where(big > 0, big, 1.0)
        return cls.from_moments(X.mean(axis=0), (X / big).std(axis=0) * big)

    @classmethod
    def from_moments(cls, mean, std) -> "Standardizer":
        """From per-column means and standard deviations (e.g. computed a block at a time)."""
        std = np.asarray(std, dtype=np.float64)
        return cls(mean, np.where(std > 0, std, 1.0))

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.scale.shape:
            raise ValueError(f"standardizer: mean has {self.mean.size} columns, scale {self.scale.size}")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)):
            raise ValueError("standardizer: expected finite means and positive finite scales")

    def transform(self, X) -> Array:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def transform_inplace(self, X: Array) -> None:
        """The same, in place on a float array (a batch in the network's dtype)."""
        X -= self.mean
        X /= self.scale

    def inverse_transform(self, Z) -> Array:
        return np.asarray(Z, dtype=np.float64) * self.scale + self.mean


def encode_labels(y, classes=None) -> tuple[Array, Array]:
    """Labels to indices 0..K-1 and the sorted classes; with ``classes`` given, a label
    outside them is an error that names it."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y: expected one label per sample (a 1-D array), found shape {y.shape}")
    if classes is None:
        classes = np.unique(y)
    classes = np.asarray(classes)
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    unknown = classes[idx] != y
    if np.any(unknown):
        bad = sorted({str(v) for v in y[unknown]})
        raise ValueError(f"y: labels {', '.join(bad[:5])} are not among the classes {classes.tolist()}")
    return idx.astype(np.int64), classes


def check_targets(y, name: str = "y", unit: str = "row", index=None) -> None:
    """Refuse missing targets (None, NaN, an empty string) and infinite ones, naming the
    rows that hold them (in the user's terms: ``unit="line"`` and ``index`` the line of each
    row, for a file; see :func:`~deltaprop.validation.describe_rows`), before any decision
    is taken from them.

    Raises
    ------
    ValueError
    """
    y = np.asarray(y)
    if y.dtype.kind == "f":
        check_values(y, name, unit=unit, index=index)
        return
    if y.dtype.kind not in "OUS":
        return
    flat = y.reshape(len(y), -1)
    if y.dtype.kind in "US":
        missing = np.char.str_len(np.char.strip(flat)) == 0
    else:  # objects: one at a time
        missing = np.frompyfunc(_missing, 1, 1)(flat).astype(bool)
    rows = np.flatnonzero(missing.any(axis=1))
    if len(rows):
        raise ValueError(f"{name}: missing targets (empty, None or NaN) at {describe_rows(rows, unit, index)}; "
                         "fill them in or leave those rows out")


def _missing(v) -> bool:
    return v is None or (isinstance(v, (str, bytes)) and not v.strip()) or \
        (isinstance(v, (float, np.floating)) and not np.isfinite(v))


COUNT_VALUES = 10
"""Integer targets with more distinct values than this, one of them on a single row, are
taken for counts or measures (regression), not classes."""


def infer_task(y) -> str:
    """Classification for labels (strings, booleans, or few distinct integers, none of
    them on a single row when there are more than :data:`COUNT_VALUES`) and for several
    0/1 columns (multilabel), else regression."""
    y = np.asarray(y)
    if y.dtype.kind in "OUSb":
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1:
        return "classification" if np.all((y == 0) | (y == 1)) else "regression"
    if y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(y == np.round(y))):
        values, counts = np.unique(y, return_counts=True)
        # a tail of values seen once, among many, is what counts and measures have (visits,
        # ages, prices in whole units); classes coded as integers do not
        counts_or_measures = len(values) > COUNT_VALUES and np.any(counts == 1)
        if len(values) <= max(2, min(100, len(y) // 5)) and not counts_or_measures:
            return "classification"
    return "regression"


@dataclass
class OutputChoice:
    """What a target calls for: the likelihood, the output width, the classes, and the
    targets as the network takes them (class indices, a 0/1 column, or the values)."""

    likelihood: str
    n_outputs: int
    classes: Array | None
    y: Array


def choose_output(y, likelihood: str | None = None, task: str | None = None) -> OutputChoice:
    """Decide the likelihood and output layout for targets ``y``.

    Class labels (one per row) become indices; two classes with a Bernoulli-type
    likelihood (the default for two) are one output column of 0/1, more classes one
    softmax output per class. Several 0/1 columns are multilabel (Bernoulli, one
    output each). Real targets default to the Gaussian likelihood.
    """
    y = np.asarray(y)
    if likelihood is not None:
        task = get_likelihood(likelihood).task
    task = task or infer_task(y)
    if task == "classification" and y.ndim == 2 and y.shape[1] > 1:  # multilabel
        return OutputChoice(likelihood or "bernoulli", y.shape[1], None, y)
    if task == "classification":
        idx, classes = encode_labels(y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y)
        if len(classes) < 2:
            raise ValueError(f"y: expected at least 2 classes, found only 1 class: {classes.tolist()}")
        likelihood = likelihood or ("bernoulli" if len(classes) == 2 else "categorical")
        if likelihood != "categorical" and len(classes) == 2:
            return OutputChoice(likelihood, 1, classes, idx.reshape(-1, 1))
        if likelihood != "categorical":
            raise ValueError(f"likelihood: {likelihood} takes two classes (or 0/1 columns), found {len(classes)}")
        return OutputChoice(likelihood, len(classes), classes, idx)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y: regression targets must be numbers, found dtype {y.dtype}")
    return OutputChoice(likelihood or "gaussian", 1 if y.ndim == 1 else y.shape[1], None, y.astype(np.float64))
