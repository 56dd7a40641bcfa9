"""Training: eq. (10) repeated "until the gradient is zero", and what makes it work in practice.

:func:`train` runs mini-batch gradient descent (full-batch when ``batch_size`` is
None: the lecture's eq. (10) exactly; online when it is 1) with any optimizer of
:mod:`deltaprop.optimizers`, a learning-rate schedule, L2 weight decay (never on
the bias rows), inverted dropout, gradient-norm clipping and max-norm
constraints; it stops on max epochs, a gradient-norm tolerance, early stopping
or a callback, and says which. It never returns NaN weights: a loss or gradient
that stops being finite raises :class:`DivergenceError` with the last finite
weights kept. With ``checkpoint=`` it writes its whole state atomically, and
``resume=`` continues bit-identically.

The per-batch loop allocates nothing: the batch is gathered straight into the
network's input buffer, whose column of ones was written once.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from typing import Sequence

import numpy as np

from .callbacks import Callback, EarlyStopping, History
from .network import Network, Workspace, as_rng
from .optimizers import Optimizer, get_optimizer
from .schedules import Schedule, get_schedule
from .validation import check_float, check_int

Array = np.ndarray


class DivergenceError(RuntimeError):
    """The loss or the gradient stopped being finite; the network keeps the last finite weights."""

    def __init__(self, message: str, epoch: int, batch: int, history: "History"):
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`: raised between two batches, after the checkpoint (if any)."""

    def __init__(self, history: "History", checkpoint: str | None):
        super().__init__("training interrupted")
        self.history, self.checkpoint = history, checkpoint


# --- evaluation --------------------------------------------------------------------
def metric_value(net: Network, o: Array, T: Array) -> float:
    """Accuracy (classification) or R^2 averaged over outputs (regression)."""
    if net.likelihood.task == "classification":
        if net.likelihood.name == "categorical":
            return float(np.mean(np.argmax(o, axis=1) == np.argmax(T, axis=1)))
        return float(np.mean((o > 0.5) == (T > 0.5)))
    ss_res = ((T - o) ** 2).sum(axis=0)
    ss_tot = ((T - T.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
    return float(r2.mean())


def evaluate(net: Network, X: Array, T: Array) -> tuple[float, float]:
    """(J, metric) on validated inputs X and encoded targets T."""
    J, o = net.loss_and_outputs(X, T)
    return J, metric_value(net, o, T)


def split_validation(T: Array, fraction: float, rng: np.random.Generator, stratify: bool):
    """Indices (train, validation), with ``fraction`` of the rows held out, per class when stratified."""
    n = T.shape[0]
    if stratify:
        labels = np.argmax(T, axis=1) if T.shape[1] > 1 else T[:, 0]
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


# --- the trainer -------------------------------------------------------------------
class _Trainer:
    """The state of one training run, so that it can be checkpointed between any two batches."""

    def __init__(self, net: Network, X, y, *, optimizer, epochs, batch_size, validation, schedule,
                 l2, dropout, clip_norm, max_norm, grad_tol, early_stopping, callbacks, shuffle, seed):
        self.net = net
        X = net.check_X(X, convert=False)
        T = net.encode_targets(y, X.shape[0])
        if isinstance(seed, np.random.Generator):
            self.rng = seed
        else:
            if seed is None:
                seed = int(np.random.SeedSequence().entropy % 2**63)
            self.rng = as_rng(seed)
        self.initial_rng_state = self.rng.bit_generator.state
        self.epochs = check_int("epochs", epochs, 1)
        self.l2 = check_float("l2", l2, 0.0)
        self.dropout = check_float("dropout", dropout, 0.0, below=1.0)
        self.clip_norm = None if clip_norm is None else check_float("clip_norm", clip_norm, 0.0, strict=True)
        self.max_norm = None if max_norm is None else check_float("max_norm", max_norm, 0.0, strict=True)
        self.grad_tol = None if grad_tol is None else check_float("grad_tol", grad_tol, 0.0, strict=True)
        self.shuffle = bool(shuffle)
        self.data_shape = [int(X.shape[0]), int(X.shape[1]), int(T.shape[1])]

        # validation data: given, or a held-out fraction (stratified for classification)
        self.Xv = self.Tv = None
        if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
            if not 0 < validation < 1:
                raise ValueError(f"validation: expected a fraction in (0, 1), found {validation}")
            train_idx, val_idx = split_validation(
                T, float(validation), self.rng, net.likelihood.task == "classification")
            self.Xv, self.Tv = net.check_X(X[val_idx]), T[val_idx]
            X, T = X[train_idx], T[train_idx]
        elif validation is not None:
            try:
                Xv, yv = validation
            except (TypeError, ValueError):
                raise TypeError("validation: expected a fraction or a pair (X_val, y_val)") from None
            self.Xv = net.check_X(Xv, "validation X")
            self.Tv = net.encode_targets(yv, self.Xv.shape[0])

        N = X.shape[0]
        self.N = N
        B = N if batch_size is None else check_int("batch_size", batch_size, 1)
        self.B = min(B, N)
        self.n_batches = -(-N // self.B)
        # the trainer's own buffers, not the network's cache that forward() and evaluate()
        # use: full-batch data is gathered into them once and must stay
        self.ws = Workspace(net.sizes, self.B, net.dtype)
        self.T = T
        if self.n_batches == 1:
            # full batch: the data is the input buffer, gathered once
            self.X = None
            self.ws.h[0][:, :-1] = X
            self.ws.T[...] = T
        else:
            # the data in the training dtype (no copy when it already is), gathered batch by
            # batch into a contiguous staging buffer and from there next to the column of ones
            self.X = np.ascontiguousarray(X, dtype=net.dtype)
            self.stage = np.empty((self.B, X.shape[1]), dtype=net.dtype)

        self.optimizer: Optimizer = get_optimizer(optimizer).bind(net.theta, net.blocks())
        self.base_lr = self.optimizer.learning_rate
        self.schedule: Schedule = get_schedule(schedule)
        self.callbacks = list(callbacks)
        if early_stopping is not None and early_stopping is not False:
            if not isinstance(early_stopping, EarlyStopping):
                early_stopping = EarlyStopping(patience=early_stopping)
            self.callbacks.insert(0, early_stopping)

        L = net.n_layers
        self.masks = None
        if self.dropout > 0 and L > 1:
            self.masks = [None] + [np.empty((self.B, net.sizes[l]), dtype=net.dtype) for l in range(1, L)]
        self.weight_rows = net.weight_rows()
        self.l2_work = [np.empty_like(W) for W in self.weight_rows] if self.l2 > 0 else None
        self.col_norms = [np.empty(W.shape[1], dtype=net.dtype) for W in self.weight_rows] if self.max_norm else None
        self.last_good = np.empty_like(net.theta)

        self.history = History(metric="accuracy" if net.likelihood.task == "classification" else "r2")
        # position: the next epoch and batch, and the running sums of the epoch in progress
        self.epoch, self.batch = 0, 0
        self.perm = np.arange(N)
        self.loss_sum = self.last_g2 = 0.0
        self.epoch_time = 0.0
        self.interrupted = False

    # -- one batch ---------------------------------------------------------------------
    def _step(self, b: int, idx: Array | None) -> None:
        net, ws, opt = self.net, self.ws, self.optimizer
        if idx is not None:
            np.take(self.X, idx, axis=0, out=self.stage[:b], mode="clip")
            np.copyto(ws.h[0][:b, :-1], self.stage[:b])  # np.take would buffer a strided out
            np.take(self.T, idx, axis=0, out=ws.T[:b], mode="clip")
        if self.masks is not None:
            keep = 1.0 - self.dropout
            for mask in self.masks[1:]:
                m = mask[:b]
                self.rng.random(out=m, dtype=net.dtype)
                np.less(m, keep, out=m)  # inverted dropout: keep with probability 1 - p ...
                m *= 1.0 / keep  # ... and scale so that no rescaling is needed at prediction
        net.forward_pass(ws, b, self.masks)
        # plain SGD gets -mu grad J from the backward pass (see Network.output_delta)
        self.scale = -opt.learning_rate if opt.folds_learning_rate else 1.0
        J = net.output_delta(ws, b, self.scale)
        if not math.isfinite(J):
            self._diverged(J)  # before any update: the weights stay the last finite ones
        self.g2 = 0.0
        self.need_norm = self.clip_norm is not None or self.batch == self.n_batches - 1
        opt.begin_step()
        # without clipping, which needs the whole gradient first, each layer is updated as
        # soon as backpropagation is done with it
        net.backpropagate(ws, b, dphi_ready=self.masks is not None,
                          after_layer=self._update_layer if self.clip_norm is None else self._regularize_layer)
        g2 = self.g2 / (self.scale * self.scale)
        if not math.isfinite(g2):  # (a gradient overflowing with a finite loss)
            self._diverged(J)
        if self.clip_norm is not None:
            if g2 > self.clip_norm ** 2:
                net.grad *= self.clip_norm / math.sqrt(g2)
            for k in range(opt.n_blocks):
                self._apply(k)
        if self.max_norm is not None:
            for W, norms in zip(self.weight_rows, self.col_norms):
                np.einsum("ij,ij->j", W, W, out=norms)
                np.sqrt(norms, out=norms)
                np.maximum(norms, self.max_norm, out=norms)
                np.divide(self.max_norm, norms, out=norms)
                W *= norms
        self.loss_sum += J * b
        self.last_g2 = g2

    def _regularize_layer(self, l: int) -> None:
        """L2 decay into G[l] (never the bias row), and G[l]'s share of the squared norm."""
        net = self.net
        G = net.G[l]
        if self.l2_work is not None:
            # J + l2/2 sum ||W[l][:-1]||^2, as scaled as the rest of the gradient
            work = self.l2_work[l - 1]
            np.multiply(net.W[l][:-1], self.scale * self.l2, out=work)
            G[:-1] += work
        if self.need_norm:
            flat = G.reshape(-1)
            self.g2 += float(np.dot(flat, flat))

    def _update_layer(self, l: int) -> None:
        self._regularize_layer(l)
        self._apply(l - 1)

    def _apply(self, k: int) -> None:
        """The optimizer's update of layer k + 1 (eq. (10), or a refinement of it)."""
        net, opt = self.net, self.optimizer
        if opt.folds_learning_rate:
            opt.apply_block(net.theta, net.grad, k)  # theta <- theta + (-mu grad J)
        else:
            opt.update_block(net.theta, net.grad, k)

    def _diverged(self, J):
        net = self.net
        if not np.all(np.isfinite(net.theta)):
            np.copyto(net.theta, self.last_good)
        self.history.stop_reason = "diverged"
        raise DivergenceError(
            f"training diverged at epoch {self.epoch + 1}, batch {self.batch + 1}: the loss is {J} "
            f"with learning rate {self.optimizer.learning_rate:g}; try a smaller learning rate "
            "(or gradient clipping). The network keeps its last finite weights.",
            self.epoch + 1, self.batch + 1, self.history)

    # -- epochs ------------------------------------------------------------------------
    def run(self, checkpoint: str | None, checkpoint_every: int) -> History:
        # overflow on the way to divergence is caught explicitly (DivergenceError), not warned about
        with np.errstate(over="ignore", invalid="ignore"):
            return self._run(checkpoint, checkpoint_every)

    def _run(self, checkpoint, checkpoint_every):
        net, h = self.net, self.history
        stop = ""
        while self.epoch < self.epochs and not stop:
            if self.batch == 0:
                lr = self.schedule(self.base_lr, self.epoch, self.epochs)
                self.optimizer.learning_rate = lr
                if self.shuffle and self.X is not None:
                    self.perm = self.rng.permutation(self.N)
                np.copyto(self.last_good, net.theta)
            t0 = time.perf_counter()
            while self.batch < self.n_batches:
                start = self.batch * self.B
                b = min(self.B, self.N - start)
                self._step(b, None if self.X is None else self.perm[start:start + b])
                self.batch += 1
                if self.interrupted:
                    self.epoch_time += time.perf_counter() - t0
                    if checkpoint:
                        self.save(checkpoint)
                    raise TrainingInterrupted(h, checkpoint)
            if not np.all(np.isfinite(net.theta)):
                self._diverged(float("nan"))
            stop = self._end_epoch(time.perf_counter() - t0)
            if checkpoint and (self.epoch % checkpoint_every == 0 or stop or self.epoch == self.epochs):
                self.save(checkpoint)
        h.stop_reason = stop or f"reached the maximum of {self.epochs} epochs"
        for cb in self.callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(net, h)
        return h

    def _end_epoch(self, seconds: float) -> str:
        net, h = self.net, self.history
        h.loss.append(self.loss_sum / self.N)
        h.grad_norm.append(math.sqrt(self.last_g2))
        h.learning_rate.append(self.optimizer.learning_rate)
        if self.Xv is not None:
            vl, vm = evaluate(net, self.Xv, self.Tv)
        else:
            vl = vm = float("nan")
        h.val_loss.append(vl)
        h.val_metric.append(vm)
        h.time.append(self.epoch_time + seconds)
        epoch = self.epoch
        self.epoch, self.batch = self.epoch + 1, 0
        self.loss_sum = self.last_g2 = self.epoch_time = 0.0
        self.schedule.observe(h.loss[-1] if math.isnan(vl) else vl)
        stop = ""
        if self.grad_tol is not None and h.grad_norm[-1] < self.grad_tol:
            stop = f"gradient norm {h.grad_norm[-1]:.3g} below the tolerance {self.grad_tol:g}"
        for cb in self.callbacks:
            if cb.on_epoch_end(epoch, h, net) and not stop:
                stop = getattr(cb, "stop_reason", "") or f"stopped by {type(cb).__name__}"
        return stop

    # -- checkpoints (see deltaprop.checkpoints) ------------------------------------------
    def save(self, path: str) -> None:
        from .checkpoints import save_checkpoint

        save_checkpoint(self, path)

    def restore(self, path: str) -> None:
        from .checkpoints import restore_checkpoint

        restore_checkpoint(self, path)


def train(
    net: Network,
    X,
    y,
    optimizer: str | Optimizer = "adam",
    epochs: int = 100,
    batch_size: int | None = 32,
    validation=None,
    schedule: str | Schedule | None = None,
    l2: float = 0.0,
    dropout: float = 0.0,
    clip_norm: float | None = None,
    max_norm: float | None = None,
    grad_tol: float | None = None,
    early_stopping: int | EarlyStopping | None = None,
    callbacks: Sequence[Callback] = (),
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    checkpoint: str | None = None,
    checkpoint_every: int = 1,
    resume: str | None = None,
    blas_threads: int | None = None,
) -> History:
    """Train ``net`` in place by backpropagation and gradient descent.

    Parameters
    ----------
    net : Network
    X : array-like of shape (n_samples, D_0)
    y : array-like
        Targets for the network's likelihood (class indices or one-hot, 0/1, reals, counts).
    optimizer : str or Optimizer, default "adam"
        An optimizer object (``deltaprop.SGD(learning_rate=0.1)``) or a name with
        default settings (``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``,
        ``adam``, ``adamw``).
    epochs : int
        The maximum number of passes over the data.
    batch_size : int or None, default 32
        None for full-batch gradient descent (eq. (10) on the whole criterion), 1 for
        online learning. The last, shorter batch of an epoch is used, not dropped.
    validation : float or (X_val, y_val), optional
        Validation data, or the fraction of (X, y) to hold out (stratified by class
        for classification).
    schedule : str or Schedule, optional
        Learning-rate schedule: ``constant``, ``step``, ``exponential``,
        ``inverse_time``, ``cosine``, ``plateau`` or an object.
    l2 : float
        L2 weight decay lambda: J + lambda/2 sum ||W[l][:-1]||^2 (bias rows never decayed).
    dropout : float
        Inverted-dropout rate on the hidden layers (off at prediction).
    clip_norm : float, optional
        Rescale the gradient when its norm exceeds this.
    max_norm : float, optional
        Rescale each unit's incoming weight vector to at most this norm after every step.
    grad_tol : float, optional
        Stop when the epoch's gradient norm (see :class:`History`) falls below it:
        the lecture's "until the gradient is zero".
    early_stopping : int or EarlyStopping, optional
        Patience in epochs (or an object), monitoring the validation loss; restores
        the best weights.
    callbacks : sequence of Callback
        Objects with ``on_epoch_end(epoch, history, net)``; returning True stops.
    shuffle : bool
        Reshuffle the samples every epoch (mini-batch training).
    seed : int or Generator, optional
        Drives shuffling, dropout and the validation split; the same seed gives
        bit-identical weights and history on the same machine.
    checkpoint : str, optional
        Path of a checkpoint written atomically every ``checkpoint_every`` epochs, at
        the end, and on Ctrl-C.
    resume : str, optional
        A checkpoint to continue from, bit-identically.
    blas_threads : int, optional
        Threads for the BLAS matrix products while training (through threadpoolctl).
        By default one thread when the batch's largest product is small (under 10
        million multiply-adds, e.g. batch 32 on a 784-256 layer), where thread
        hand-offs cost more than they save next to NumPy's single-threaded
        element-wise work; otherwise the BLAS library's own setting.

    Returns
    -------
    History

    Raises
    ------
    DivergenceError
        When the loss or gradient stops being finite (the last finite weights are kept).
    TrainingInterrupted
        On Ctrl-C, between two batches, after writing the checkpoint.
    """
    trainer = _Trainer(net, X, y, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                       validation=validation, schedule=schedule, l2=l2, dropout=dropout,
                       clip_norm=clip_norm, max_norm=max_norm, grad_tol=grad_tol,
                       early_stopping=early_stopping, callbacks=callbacks, shuffle=shuffle, seed=seed)
    if resume is not None:
        trainer.restore(resume)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    with _blas_limit(blas_threads, net, trainer.B):
        if threading.current_thread() is not threading.main_thread():
            return trainer.run(checkpoint, checkpoint_every)

        def on_sigint(signum, frame):  # finish the batch in progress, then stop cleanly
            trainer.interrupted = True

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            return trainer.run(checkpoint, checkpoint_every)
        finally:
            signal.signal(signal.SIGINT, previous)


# multiply-adds; on the 2-core development machine one BLAS thread was faster below it
# (784-256-128-10: batch 32, 0.85 s against 1.02 s an epoch; batch 64 and up, two threads won)
_SMALL_PRODUCT = 10_000_000


def _blas_limit(blas_threads, net: Network, B: int):
    """A context that limits BLAS threads (threadpoolctl), or does nothing."""
    import contextlib

    if blas_threads is None:
        largest = max(B * (net.sizes[l - 1] + 1) * net.sizes[l] for l in range(1, net.n_layers + 1))
        blas_threads = 1 if largest < _SMALL_PRODUCT else None
    else:
        blas_threads = check_int("blas_threads", blas_threads, 1)
    if blas_threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the core needs only NumPy: without threadpoolctl, leave BLAS as it is
        return contextlib.nullcontext()
    return threadpool_limits(limits=blas_threads, user_api="blas")
