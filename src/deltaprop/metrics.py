"""The scores deltaprop reports: accuracy for classifiers, R^2 for regressors.

One place for both, used by the training history, :meth:`deltaprop.Model.score`
and the command line, so that every report means the same thing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "metric_name", "r2"]

Array = np.ndarray


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """The fraction of rows predicted exactly (for several labels per row: all of them,
    scikit-learn's subset accuracy), weighted by ``sample_weight`` if given."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    right = y_true == y_pred
    return float(np.average(right if right.ndim == 1 else right.all(axis=1), weights=sample_weight))


def r2(y_true, y_pred, sample_weight=None) -> float:
    """The coefficient of determination, averaged over outputs (0 for a constant target),
    with rows weighted by ``sample_weight`` if given."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(y_true.shape)
    w = np.ones((len(y_true), 1)) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1, 1)
    ss_res = (w * (y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = (w * (y_true - np.average(y_true, axis=0, weights=w[:, 0])) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
    return float(r2.mean())


def metric_name(task: str) -> str:
    """``"accuracy"`` for classification, ``"r2"`` for regression."""
    return "accuracy" if task == "classification" else "r2"


def score_outputs(likelihood, o: Array, T: Array, sample_weight=None) -> float:
    """Accuracy or R^2 of outputs ``o`` against encoded targets ``T`` (network units)."""
    if likelihood.task != "classification":
        return r2(T, o, sample_weight)
    if likelihood.name == "categorical":
        return accuracy(np.argmax(T, axis=1), np.argmax(o, axis=1), sample_weight)
    return accuracy(likelihood.predict(T), likelihood.predict(o), sample_weight)


def score_source(net, source, ws) -> tuple[float, float]:
    """The loss (the data term of eq. (1), the mean -log p(y|x)) and the metric of ``net``
    on every row of a batch source (arrays or blocks), a batch at a time through the
    workspace ``ws``."""
    from .core.engine import forward, mean_output, output_delta

    order = source.order(None)
    K = net.sizes[-1]
    o, T = np.empty((source.n_samples, K), net.dtype), np.empty((source.n_samples, K), net.dtype)
    w = np.empty(source.n_samples, net.dtype) if source.weighted else None
    loss = weight = 0.0
    start = 0
    for k in range(source.steps(order)):
        b = source.fill(ws, order, k)
        forward(net, ws, b)
        loss += ws.backend.scalars(output_delta(net, ws, b, mean=False))[0]
        weight += ws.total_weight
        o[start:start + b], T[start:start + b] = ws.backend.to_host(mean_output(net, ws, b)), ws.T[:b]
        if w is not None:
            w[start:start + b] = ws.w[:b]
        start += b
    return loss / weight, score_outputs(net.likelihood, o, T, w)
