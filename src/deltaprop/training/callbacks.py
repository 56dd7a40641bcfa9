"""What a training run reports and how it can be steered from outside: the per-epoch
:class:`History`, the :class:`Callback` base class, and :class:`EarlyStopping`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..validation import check_float, check_int


Array = np.ndarray


@dataclass
class History:
    """What happened, epoch by epoch.

    Attributes
    ----------
    loss : list of float
        Training criterion J of each epoch: the running mean of its batch values,
        **including the L2 penalty** (as scikit-learn's ``loss_``; see
        :mod:`deltaprop.core.objective`), under dropout when dropout is on.
    val_loss, val_metric : list of float
        On the validation data, after each epoch (NaN when there is none); the
        validation loss is the mean negative log-likelihood alone.
    metric : str
        ``"accuracy"`` for classification, ``"r2"`` for regression.
    grad_norm : list of float
        ||grad J|| on the epoch's last batch (taken there only, to keep a pass over
        the weights out of every step): with full-batch training, exactly the norm
        of the gradient of the lecture's criterion.
    learning_rate : list of float
    time : list of float
        Wall time of each epoch, seconds (the one field that is not reproducible).
    stop_reason : str
    stopped : bool
        Whether a stopping rule (early stopping, the gradient tolerance, a callback)
        ended the run, rather than the epoch budget: such a run is finished, and a
        checkpoint of it is not resumed.
    best_epoch : int or None
        The epoch whose weights were restored by early stopping.
    member_best_epochs : list of int
        For a cross-fitted ensemble (:mod:`deltaprop.training.crossfit`), each member's
        best epoch, whose weights it keeps (``best_epoch`` is then None); else empty.
    train_metric : list of float
        With diagnostics on: the metric on the probe of training rows after each epoch
        (what the network gets right of the data it learns from); else empty.
    layers : dict
        With diagnostics on (:class:`~deltaprop.diagnostics.health.Diagnostics`): for each
        quantity (``grad_norm``, ``weight_norm``, ``update_ratio``, ``dead``,
        ``saturated``), one list per epoch of one value per layer; else empty.
    """

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_metric: list = field(default_factory=list)
    metric: str = "accuracy"
    grad_norm: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    time: list = field(default_factory=list)
    stop_reason: str = ""
    stopped: bool = False
    best_epoch: int | None = None
    train_metric: list = field(default_factory=list)
    layers: dict = field(default_factory=dict)
    member_best_epochs: list = field(default_factory=list)

    _per_epoch = ("loss", "val_loss", "val_metric", "grad_norm", "learning_rate", "time")
    _scalars = ("metric", "stop_reason", "stopped", "best_epoch")

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def record(self, epoch: int) -> dict:
        """Epoch ``epoch`` (0-based) as one flat dict (one line of ``--log``)."""
        out = {"epoch": epoch + 1}
        for k in self._per_epoch:
            out[k] = getattr(self, k)[epoch]
        out[f"val_{self.metric}"] = out.pop("val_metric")
        if self.train_metric:
            out[f"train_{self.metric}"] = self.train_metric[epoch]
        if self.layers:
            out["layers"] = {q: values[epoch] for q, values in self.layers.items()}
        return out

    def copy(self) -> "History":
        """An independent copy (the lists are new; their numbers are immutable)."""
        new = History(**{k: list(v) if isinstance(v, list) else v for k, v in vars(self).items()})
        new.layers = {q: [list(e) for e in values] for q, values in self.layers.items()}
        return new

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (*self._per_epoch, *self._scalars, "train_metric", "layers",
                                              "member_best_epochs")}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """The inverse of :meth:`to_dict`, with every field checked (ValueError otherwise)."""
        optional = {"layers", "train_metric", "member_best_epochs"}
        if not isinstance(d, dict) or set(d) - optional != {*cls._per_epoch, *cls._scalars}:
            raise ValueError("history: expected the fields of History.to_dict()")
        # (a checkpoint of version 3 has none of the optional fields, and older ones no member_best_epochs)
        d = {"layers": {}, "train_metric": [], "member_best_epochs": [], **d}
        layers = d["layers"]
        epochs = len(d["loss"]) if isinstance(d["loss"], list) else -1
        if not (isinstance(layers, dict) and all(
                isinstance(q, str) and isinstance(v, list) and len(v) == epochs and all(
                    isinstance(e, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in e)
                    for e in v) for q, v in layers.items())):
            raise ValueError("history: malformed layers (expected per-epoch lists of per-layer numbers)")
        lists = [d[k] for k in cls._per_epoch]
        if not all(isinstance(v, list) and len(v) == len(lists[0]) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) for v in lists):
            raise ValueError("history: expected per-epoch lists of numbers of one length")
        train = d["train_metric"]
        if not (isinstance(train, list) and len(train) in (0, len(lists[0])) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in train)):
            raise ValueError("history: malformed train_metric (expected none, or a number per epoch)")
        members = d["member_best_epochs"]
        if not (isinstance(members, list) and all(type(e) is int and 1 <= e <= len(lists[0]) for e in members)):
            raise ValueError("history: malformed member_best_epochs (expected epochs, 1-based)")
        best = d["best_epoch"]
        if not (isinstance(d["metric"], str) and isinstance(d["stop_reason"], str) and isinstance(d["stopped"], bool)
                and (best is None or type(best) is int and 1 <= best <= len(lists[0]))):  # 1-based
            raise ValueError("history: malformed metric, stop_reason, stopped or best_epoch")
        return cls(**d)


class Callback:
    """Hooks that :func:`deltaprop.train` calls; override the ones you need.

    In the order they are called::

        on_train_begin(net, state)            # state: the TrainState the run starts from
        on_epoch_begin(epoch, net, state)     # epoch counts from 0
        on_batch_begin(batch, net, state)     # batch index within the epoch
        on_batch_end(batch, loss, net, state) # loss: J on that batch
        on_epoch_end(epoch, history, net)     # return True to stop training
        on_train_end(net, history)

    A callback that stops training may set ``stop_reason``. One with
    ``state_dict()``/``load_state_dict(scalars, arrays)`` has its state saved in the
    :class:`TrainState` and in checkpoints, so that a continued run goes on where
    it was. Objects with only some of these methods (no subclassing) work too.
    """

    def on_train_begin(self, net, state) -> None:
        pass

    def on_epoch_begin(self, epoch: int, net, state) -> None:
        pass

    def on_batch_begin(self, batch: int, net, state) -> None:
        pass

    def on_batch_end(self, batch: int, loss: float, net, state) -> None:
        pass

    def on_epoch_end(self, epoch: int, history: History, net) -> bool | None:
        return None

    def on_train_end(self, net, history: History) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when the monitored loss has not improved by ``min_delta`` for ``patience`` epochs.

    Monitors the validation loss when there is validation data, else the training
    loss. With ``restore_best``, the network ends with the weights of its best epoch.
    Its record (best loss, best weights, epochs waited) starts clean at every
    :meth:`on_train_begin`; a continued run restores it from the TrainState.
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0, restore_best: bool = True):
        self.patience = check_int("patience", patience, 1)
        self.min_delta = check_float("min_delta", min_delta, 0.0)
        self.restore_best = bool(restore_best)
        self.on_train_begin(None, None)

    def settings(self) -> dict:
        return {"patience": self.patience, "min_delta": self.min_delta, "restore_best": self.restore_best}

    def on_train_begin(self, net, state):
        self.best, self.best_epoch, self.wait = math.inf, None, 0
        self.best_theta: Array | None = None
        self.stop_reason = ""

    def on_epoch_end(self, epoch, history, net):
        val = history.val_loss[-1]
        monitored = history.loss[-1] if math.isnan(val) else val
        if monitored < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = float(monitored), epoch, 0
            if self.restore_best:  # (kept on the host, whatever the network's backend)
                if self.best_theta is None:
                    self.best_theta = np.empty(net.n_params, net.dtype)
                np.copyto(self.best_theta, net.backend.to_host(net.theta))
            return False
        self.wait += 1
        if self.wait >= self.patience:
            what = "training" if math.isnan(val) else "validation"
            self.stop_reason = (f"early stopping: no {what} loss improvement for {self.patience} epochs "
                                f"(best at epoch {self.best_epoch + 1})")
            return True
        return False

    def on_train_end(self, net, history):
        if self.restore_best and self.best_theta is not None:
            net.backend.upload(net.theta, self.best_theta)
            history.best_epoch = self.best_epoch + 1

    def state_dict(self):
        arrays = {} if self.best_theta is None else {"best_theta": self.best_theta}
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}, arrays

    def load_state_dict(self, scalars, arrays):
        best, best_epoch, wait = scalars["best"], scalars["best_epoch"], scalars["wait"]
        if not (isinstance(best, (int, float)) and not math.isnan(best) and type(wait) is int and wait >= 0
                and (best_epoch is None or type(best_epoch) is int and best_epoch >= 0)):
            raise ValueError(f"early stopping: malformed state {scalars!r}")
        self.best, self.best_epoch, self.wait = float(best), best_epoch, wait
        self.best_theta = arrays["best_theta"].copy() if "best_theta" in arrays else None
