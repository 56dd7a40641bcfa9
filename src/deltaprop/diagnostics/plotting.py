"""Pictures of a training run, written to PNG without a display (matplotlib's Agg backend)."""

from __future__ import annotations

import io
import math

import numpy as np

from ..io.files import atomic_write


def _figure(ncols: int, width: float = 4.2, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def plot_learning_curves(history, path, title: str = "") -> None:
    """Training and validation loss, the validation metric, and the learning rate, per epoch."""
    plt, fig, (ax_loss, ax_metric, ax_lr) = _figure(3)
    epochs = np.arange(1, history.epochs + 1)
    ax_loss.plot(epochs, history.loss, label="training")
    if not all(math.isnan(v) for v in history.val_loss):
        ax_loss.plot(epochs, history.val_loss, label="validation")
    ax_loss.set(xlabel="epoch", ylabel="J (mean negative log-likelihood)", title="loss")
    ax_loss.set_yscale("log" if min(history.loss) > 0 else "linear")
    ax_loss.legend()
    ax_metric.plot(epochs, history.val_metric, color="C2")
    ax_metric.set(xlabel="epoch", ylabel=f"validation {history.metric}", title=history.metric)
    ax_lr.plot(epochs, history.learning_rate, color="C3")
    ax_lr.set(xlabel="epoch", ylabel="learning rate mu", title="learning rate")
    if history.best_epoch:
        for ax in (ax_loss, ax_metric):
            ax.axvline(history.best_epoch, color="gray", linestyle=":", label="best")
    if title:
        fig.suptitle(title)
    _save(plt, fig, path)


def plot_confusion_matrix(cm: np.ndarray, labels, path, title: str = "confusion matrix") -> None:
    """A confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    n = len(labels)
    plt, fig, (ax,) = _figure(1, width=max(4.0, 0.45 * n + 2), height=max(3.4, 0.45 * n + 1.5))
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title=title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    _save(plt, fig, path)


def plot_decision_regions(predict, X: np.ndarray, y: np.ndarray, path, title: str = "") -> None:
    """For 2-D inputs: the predicted class over a grid, with the data on top."""
    plt, fig, (ax,) = _figure(1, width=4.6, height=4.2)
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0))
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    Z = predict(np.c_[g0.ravel(), g1.ravel()]).reshape(g0.shape)
    ax.contourf(g0, g1, Z, alpha=0.3, cmap="coolwarm")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
    ax.set(xlabel="x1", ylabel="x2", title=title or "decision regions")
    _save(plt, fig, path)
