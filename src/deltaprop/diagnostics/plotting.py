"""Pictures of a training run, written to PNG without a display (matplotlib's Agg backend)."""

from __future__ import annotations

import io
import math

import numpy as np

from ..io.files import atomic_write

__all__ = [
    "WeightSnapshots", "animate_decision_regions", "plot_confusion_matrix", "plot_decision_regions",
    "plot_learning_curves", "plot_residuals"
]


def _figure(ncols: int, width: float = 4.2, height: float = 3.4, nrows: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return plt, fig, (axes[0] if nrows == 1 else axes)


def _save(plt, fig, path) -> bytes:
    """The figure as PNG bytes, written atomically to ``path`` unless it is None."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    if path is not None:
        atomic_write(path, lambda f: f.write(buf.getvalue()))
    return buf.getvalue()


_PANELS = {"grad_norm": ("gradient norm ||G[l]||", "log"), "weight_norm": ("weight norm ||W[l]||", "log"),
           "update_ratio": ("update / weight, one step", "log"), "dead": ("dead units (relu family)", "linear"),
           "saturated": ("saturated units (sigmoid, tanh)", "linear")}


def plot_learning_curves(history, path, title: str = "") -> bytes:
    """Training and validation loss, the validation metric, and the learning rate, per epoch;
    with diagnostics, a second row: one panel per quantity, one line per layer."""
    panels = [q for q in _PANELS if history.layers.get(q)
              and not all(math.isnan(v) for e in history.layers[q] for v in e)]
    if panels:
        plt, fig, axes = _figure(max(3, len(panels)), nrows=2)
        ax_loss, ax_metric, ax_lr = axes[0][:3]
        for ax in list(axes[0][3:]) + list(axes[1][len(panels):]):
            ax.axis("off")
        plot_layer_panels(history, panels, axes[1])
    else:
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
    return _save(plt, fig, path)


def plot_layer_panels(history, panels, axes) -> None:
    """The diagnostics of :class:`~deltaprop.diagnostics.health.Diagnostics`: one panel per
    quantity, one line per layer."""
    epochs = np.arange(1, history.epochs + 1)
    for ax, q in zip(axes, panels):
        values = np.array(history.layers[q], dtype=float)
        for l in range(values.shape[1]):
            if not np.all(np.isnan(values[:, l])):
                ax.plot(epochs, values[:, l], label=f"layer {l + 1}")
        label, scale = _PANELS[q]
        if scale == "log" and np.nanmin(values) > 0:
            ax.set_yscale("log")
        elif scale == "linear":  # fractions of units
            ax.set_ylim(-0.03, 1.03)
        ax.set(xlabel="epoch", title=label)
        ax.legend(fontsize=7)


def plot_confusion_matrix(cm: np.ndarray, labels, path, title: str = "confusion matrix") -> bytes:
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
    return _save(plt, fig, path)


def plot_residuals(y_true: np.ndarray, y_pred: np.ndarray, path, title: str = "residuals") -> bytes:
    """Predicted against true values (the diagonal is perfect), and the residuals' histogram."""
    plt, fig, (ax_fit, ax_hist) = _figure(2)
    y_true, y_pred = np.asarray(y_true, float).reshape(-1), np.asarray(y_pred, float).reshape(-1)
    ax_fit.scatter(y_true, y_pred, s=6, alpha=0.6)
    lo, hi = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax_fit.plot([lo, hi], [lo, hi], color="gray", linestyle=":")
    ax_fit.set(xlabel="true", ylabel="predicted", title=title)
    ax_hist.hist(y_pred - y_true, bins=30, color="C1")
    ax_hist.set(xlabel="predicted - true", ylabel="samples", title="residuals")
    return _save(plt, fig, path)


class RegionGrid:
    """A 200 x 200 grid over 2-D data (10% margins) and the drawing of predicted classes on it."""

    def __init__(self, X: np.ndarray, n: int = 200):
        pad = 0.1 * (X.max(axis=0) - X.min(axis=0))
        lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
        self.g0, self.g1 = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
        self.points = np.c_[self.g0.ravel(), self.g1.ravel()]

    def draw(self, ax, predict, X, y, title: str) -> None:
        Z = predict(self.points).reshape(self.g0.shape)
        ax.contourf(self.g0, self.g1, Z, alpha=0.3, cmap="coolwarm")
        ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
        ax.set(xlabel="x1", ylabel="x2", title=title)


def plot_decision_regions(predict, X: np.ndarray, y: np.ndarray, path, title: str = "") -> bytes:
    """For 2-D inputs: the predicted class over a grid, with the data on top."""
    plt, fig, (ax,) = _figure(1, width=4.6, height=4.2)
    RegionGrid(X).draw(ax, predict, X, y, title or "decision regions")
    return _save(plt, fig, path)


def animate_decision_regions(predicts, X: np.ndarray, y: np.ndarray, path, titles,
                             seconds_per_frame: float = 0.2) -> None:
    """A GIF of the decision regions as training went: one frame per ``predicts[k]``
    (the last frame held longer), written atomically."""
    from PIL import Image

    grid, frames = RegionGrid(X), []
    for predict, title in zip(predicts, titles):
        plt, fig, (ax,) = _figure(1, width=4.6, height=4.2)
        grid.draw(ax, predict, X, y, title)
        frames.append(Image.open(io.BytesIO(_save(plt, fig, None))).convert("P", palette=Image.ADAPTIVE))
    durations = [int(1000 * seconds_per_frame)] * len(frames)
    durations[-1] = 2000
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


class WeightSnapshots:
    """A callback that keeps the weights at each epoch's end, for
    :func:`animate_decision_regions` (``deltaprop train --animate``)."""

    FRAMES = 40

    def __init__(self):
        self.thetas = []

    def on_epoch_end(self, epoch, history, net):
        self.thetas.append(net.theta.copy())
        return False

    def frames(self, net, model, history):
        """(epochs shown, a predict function per frame): at most FRAMES epochs, evenly spaced,
        and the model's final weights last."""
        n = len(self.thetas)
        chosen = np.unique(np.linspace(0, n - 1, min(n, self.FRAMES - 1)).round().astype(int))
        shown, predicts = [], []
        for k in chosen:
            frame = net.copy()
            np.copyto(frame.theta, self.thetas[k])
            predicts.append(lambda G, f=frame: f.predict(model.transform(G)))
            shown.append(str(k + 1))
        predicts.append(lambda G: net.predict(model.transform(G)))
        best = ", ".join(map(str, history.member_best_epochs)) or history.best_epoch or history.epochs
        shown.append(f"{best} (final weights)")
        return shown, predicts
