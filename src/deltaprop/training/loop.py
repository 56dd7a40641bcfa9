"""Training: eq. (10) repeated "until the gradient is zero", and what makes it work in practice.

:func:`train` runs mini-batch gradient descent (full-batch when ``batch_size`` is
None: the lecture's eq. (10) exactly; online when it is 1) with any optimizer of
:mod:`deltaprop.optim`, a learning-rate schedule, L2 weight decay (never on the
bias rows), inverted dropout, gradient-norm clipping and max-norm constraints; it
stops on max epochs, a gradient-norm tolerance, early stopping or a callback,
and says which. It never leaves NaN weights: a loss or gradient that stops being
finite raises :class:`DivergenceError` with the last finite weights kept.

Everything a run changes is in its :class:`TrainState` (the iterate, the
optimizer's state, the schedule's, the RNG's, the position in the epoch, the
history): :func:`train` returns it, takes it back with ``state=`` to continue
(k epochs, then n - k more, is n epochs bit for bit), and checkpoints save it.
The objects passed in (optimizer, schedule, callbacks' settings) are never
changed. The per-batch loop allocates nothing: each batch is gathered straight
into the objective's buffers.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Sequence

import numpy as np

from ..core.engine import Workspace, forward, mean_output, output_delta
from ..core.kernels import resolve_kernels
from ..core.network import as_rng
from ..core.objective import Objective
from ..data.blocks import Blocks, BlockSource
from ..data.sources import array_source
from ..diagnostics.health import Diagnostics, probe_rows
from ..io.files import json_safe
from ..metrics import metric_name, score_outputs
from ..optim.optimizers import Optimizer, get_optimizer
from ..optim.schedules import Schedule, get_schedule
from ..threads import BlasThreads, largest_product
from ..validation import check_float, check_int, check_weights, is_sparse
from .callbacks import Callback, EarlyStopping, History
from .checkpoints import load_checkpoint, save_checkpoint
from .communicators import get_communicator
from .state import TrainState

Array = np.ndarray

# rows per batch when the validation data is evaluated
VALIDATION_BATCH = 1024
# what travels with the gradient in the allreduce of data-parallel training
CARRIED = ("loss_sum", "total_weight", "rows", "nonfinite", "interrupted", "terminated")


class DivergenceError(RuntimeError):
    """The loss or the gradient stopped being finite; the network keeps the last finite weights."""

    def __init__(self, message: str, epoch: int, batch: int, state: "TrainState"):
        super().__init__(message)
        self.epoch, self.batch, self.state, self.history = epoch, batch, state, state.history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during :func:`train`: raised between two batches, after the
    checkpoint (if any). ``cause`` says which (``"interrupted"``, ``"terminated"``)."""

    def __init__(self, state: "TrainState", checkpoint: str | None, cause: str = "interrupted"):
        super().__init__(f"training {cause}")
        self.state, self.history, self.checkpoint, self.cause = state, state.history, checkpoint, cause


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


def _root_seed(seed) -> int:
    """The run's root seed: an int as given, else drawn from the Generator (or fresh entropy)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    return int(as_rng(seed).integers(2**63))


class Trainer:
    """One training run of ``net`` on (X, y), driven epoch by epoch with :meth:`run`.

    :func:`train` is ``Trainer(...).run(epochs)``; the arguments are those of
    :func:`train`, but ``resume``, which here names the checkpoint ``state`` was loaded
    from, so that its data fingerprint and settings are checked against this run's.
    Calling :meth:`run` again continues the same run, which is how a caller can act
    between epochs without paying for the checks of the data again.

    Attributes
    ----------
    state : TrainState
        The run's state (what :meth:`run` returns).
    objective : Objective
        The criterion being minimized (its L2 penalty and dropout rate).
    source : ArraySource or BlockSource
        Where the batches come from (this rank's part of each, under data-parallel training).
    validation : ArraySource or BlockSource or None
        The validation rows (held-out rows or blocks, or the data given), read a batch at a time.
    comm : Communicator
        The ranks training together (one process alone by default).
    """

    def __init__(self, net, X, y=None, *, sample_weight=None, optimizer: str | Optimizer = "adam",
                 batch_size: int | None = 32, validation=None, schedule: str | Schedule | None = None,
                 l2: float = 0.0, alpha: float = 0.0, dropout: float = 0.0, clip_norm: float | None = None,
                 max_norm: float | None = None, grad_tol: float | None = None,
                 early_stopping: int | EarlyStopping | None = None, callbacks: Sequence[Callback] = (),
                 shuffle: bool = True, seed: int | np.random.Generator | None = None,
                 state: TrainState | None = None, checkpoint: str | None = None, checkpoint_every: int = 1,
                 blas_threads: int | None = None, diagnostics: bool = False, resume: str | None = None,
                 distributed=None, buffer_blocks: int = 4, kernels: str | None = None,
                 label_smoothing: float = 0.0):
        self.net = net
        self.comm = comm = get_communicator(distributed)
        self.parallel = comm.size > 1
        self.l2 = check_float("l2", l2, 0.0)
        self.alpha = check_float("alpha", alpha, 0.0)
        self.dropout = check_float("dropout", dropout, 0.0, below=1.0)
        self.clip_norm = None if clip_norm is None else check_float("clip_norm", clip_norm, 0.0, strict=True)
        self.max_norm = None if max_norm is None else check_float("max_norm", max_norm, 0.0, strict=True)
        self.grad_tol = None if grad_tol is None else check_float("grad_tol", grad_tol, 0.0, strict=True)
        self.shuffle = bool(shuffle)
        self.checkpoint = checkpoint
        self.checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
        self.blas_threads = None if blas_threads is None else check_int("blas_threads", blas_threads, 1)
        buffer_blocks = check_int("buffer_blocks", buffer_blocks, 1)
        self.optimizer = get_optimizer(optimizer)
        self.schedule = copy.deepcopy(get_schedule(schedule))  # its state is the run's, not the caller's
        # rank 0 alone validates, logs and checkpoints: the callbacks are its own
        self.callbacks = list(callbacks) if comm.rank == 0 else []
        if early_stopping is not None and early_stopping is not False:
            settings = early_stopping.settings() if isinstance(early_stopping, EarlyStopping) \
                else {"patience": check_int("early_stopping", early_stopping, 1)}
            if comm.rank == 0:
                self.callbacks.insert(0, EarlyStopping(**settings))

        if state is not None and seed is not None and not isinstance(seed, np.random.Generator) \
                and _root_seed(seed) != state.seed:
            raise ValueError(f"seed: the state to continue was started with seed {state.seed}, found {seed}; "
                             "pass the same seed or none")
        # every rank follows rank 0's seed (shuffling) and starts from its weights
        root = state.seed if state is not None else comm.broadcast_object(_root_seed(seed))
        split_seq, loop_seq, rank_seq = np.random.SeedSequence(root).spawn(3)
        if self.parallel and state is None:
            comm.broadcast(net.theta)

        # the data: arrays (gathered by rows) or blocks (read a buffer at a time)
        blocks = X if isinstance(X, Blocks) else None
        split_rng = np.random.default_rng(split_seq)
        if blocks is not None:
            if y is not None or sample_weight is not None:
                raise TypeError("y, sample_weight: Blocks carry their own targets and weights; pass X=blocks alone")
            X = T = w = train_rows = None
            if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
                _check_fraction(validation)
                blocks, held_out = blocks.split(float(validation), split_rng)
                validation = held_out
        else:
            if y is None:
                raise TypeError("y: expected the targets of X (or X as Blocks, which carry their own)")
            X = net.check_X(X, convert=False)
            T = net.encode_targets(y, X.shape[0])
            w = None if sample_weight is None else check_weights(sample_weight, X.shape[0])
            train_rows = val_rows = None
            if isinstance(validation, (float, np.floating)) and not isinstance(validation, bool):
                _check_fraction(validation)
                train_rows, val_rows = split_validation(T, float(validation), split_rng,
                                                        net.task == "classification")
        self._data, self._digest = blocks if blocks is not None else (X, T, w), None  # (see data_digest)

        # validation data: rows held out above, blocks, or arrays given
        for b in (blocks, validation):
            if isinstance(b, Blocks) and b.n_features != net.sizes[0]:
                raise ValueError(f"X: expected {net.sizes[0]} features (sizes[0]), found {b.n_features} in {b!r}")
        self.validation = None
        if blocks is None and train_rows is not None:
            self.validation = array_source(X, T, w, VALIDATION_BATCH, net.dtype, rows=val_rows)
        elif isinstance(validation, Blocks):
            self.validation = self._block_source(validation, VALIDATION_BATCH, 1, prefetch=False)
        elif validation is not None and not isinstance(validation, (float, np.floating)):
            if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
                raise TypeError("validation: expected a fraction, a pair (X_val, y_val), a triple "
                                "(X_val, y_val, sample_weight_val) or Blocks")
            Xv = net.check_X(validation[0], "validation X", convert=False)
            Tv = net.encode_targets(validation[1], Xv.shape[0])
            wv = None
            if len(validation) == 3 and validation[2] is not None:
                wv = check_weights(validation[2], Xv.shape[0], "validation sample_weight")
            self.validation = array_source(Xv, Tv, wv, VALIDATION_BATCH, net.dtype)

        N = blocks.n_samples if blocks is not None else (X.shape[0] if train_rows is None else len(train_rows))
        B = N if batch_size is None else check_int("batch_size", batch_size, 1)
        # (from the whole set's size: every rank of a data-parallel run takes the same path)
        self.kernels = resolve_kernels(kernels, work=float(N) * net.n_params)
        settings = {"optimizer": {"name": self.optimizer.name, **self.optimizer.hyperparameters()},
                    "schedule": {"name": self.schedule.name, **self.schedule.settings()},
                    "batch_size": batch_size, "shuffle": self.shuffle, "l2": self.l2, "alpha": self.alpha,
                    "dropout": self.dropout, "clip_norm": self.clip_norm, "max_norm": self.max_norm}
        if blocks is not None:
            self.source = self._block_source(blocks, B, buffer_blocks)
        else:
            self.source = array_source(X, T, w, B, net.dtype, rows=train_rows)
        if self.parallel:
            self.source.shard(comm.rank, comm.size)
        # one buffer carries the gradient and, after it, what the ranks add up with it
        self.objective = Objective(net, l2=self.l2, dropout=self.dropout, alpha=self.alpha,
                                   carry=len(CARRIED) if self.parallel else 0, kernels=self.kernels,
                                   label_smoothing=label_smoothing)
        if self.objective.label_smoothing:  # (absent when off: checkpoints written before it still resume)
            settings["label_smoothing"] = self.objective.label_smoothing
        self.ws = self.objective.workspace(self.source.batch_size, self.source.sparse)
        self._val_ws = None if self.validation is None else Workspace(
            net.sizes, VALIDATION_BATCH, net.dtype, self.objective.ops, self.validation.sparse, net.members)
        # measured on a fixed probe of training rows, it changes nothing of the run; called
        # before the callbacks (which may read it), it is not one of them (their checkpoint keys)
        self.diagnostics = None
        if diagnostics and comm.rank == 0:
            self.diagnostics = Diagnostics(*self._probe(X, T, train_rows))
        # clipping (and an allreduce) needs the whole gradient before any update; otherwise
        # each layer is updated as soon as backpropagation is done with it
        self.fused = self.clip_norm is None and not self.parallel
        self.weight_rows = net.weight_rows()
        self.col_norms = [np.empty(W.shape[1], dtype=net.dtype) for W in self.weight_rows] if self.max_norm else None
        data_shape = [int(N), int(net.sizes[0]), int(net.sizes[-1]), int(self.source.batch_size)]

        if state is None:
            self.state = TrainState(
                theta=net.theta.copy(), optimizer=self.optimizer.init_state(net.theta, net.blocks(), self.kernels),
                schedule=self.schedule.state_dict(), seed=root, rng=np.random.default_rng(loop_seq).bit_generator.state,
                history=History(metric=metric_name(net.task)), last_good=np.empty_like(net.theta),
                data_shape=data_shape)
        else:
            if resume is not None:
                self._check_resume(state, resume, data_shape, json_safe(settings))
            self.state = self._continue_from(state, data_shape)
            np.copyto(net.theta, self.state.theta)
            if state.settings.get("schedule", {}).get("name", self.schedule.name) == self.schedule.name:
                self.schedule.load_state_dict(self.state.schedule)
        self.state.settings = json_safe(settings)
        self.state.kernels = self.kernels
        self.rng = np.random.default_rng(loop_seq)
        self.rng.bit_generator.state = self.state.rng
        # the same shuffle on every rank, but dropout masks of each rank's own
        self.mask_rng = self.rng
        if self.parallel:
            self.mask_rng = np.random.default_rng(rank_seq.spawn(comm.size)[comm.rank])
            if len(self.state.rank_rngs) == comm.size:
                self.mask_rng.bit_generator.state = self.state.rank_rngs[comm.rank]
        # set by Ctrl-C or SIGTERM: stop at the next batch boundary (every rank at the same one:
        # under data-parallel training, a signal travels with the gradient)
        self.signalled = self.interrupted = ""

    def _check_resume(self, saved: TrainState, resume: str, data_shape: list, settings: dict) -> None:
        """A checkpoint continues only the run that wrote it: same data, same settings."""
        if data_shape != saved.data_shape:
            raise ValueError(
                f"resume: checkpoint {resume!r} was written for data of shape (N, D, K, batch) = "
                f"{tuple(saved.data_shape)}, found {tuple(data_shape)}")
        if self.data_digest() != saved.data_digest:
            raise ValueError(f"resume: checkpoint {resume!r} was written for other training data "
                             "(same shape, different values); resume with the run's own data")
        changed = [f"{k}={saved.settings.get(k)!r} (now {v!r})" for k, v in settings.items()
                   if saved.settings.get(k) != v]
        if changed:
            raise ValueError(f"resume: checkpoint {resume!r} was written with other settings: "
                             f"{'; '.join(changed)}; resume with the run's own settings")

    def _continue_from(self, state: TrainState, data_shape: list) -> TrainState:
        net = self.net
        if state.theta.shape != net.theta.shape or state.theta.dtype != net.theta.dtype:
            raise ValueError(f"state: its parameters ({state.theta.size}, {state.theta.dtype}) do not fit "
                             f"the network ({net.n_params}, {np.dtype(net.dtype).name})")
        if not np.all(np.isfinite(state.theta)):
            raise ValueError("state: its parameters contain NaN or inf")
        fresh = self.optimizer.init_state(net.theta, net.blocks(), self.kernels)
        if set(fresh.arrays) != set(state.optimizer.arrays):
            raise ValueError(f"state: it holds the state of another optimizer ({sorted(state.optimizer.arrays)}), "
                             f"not of {self.optimizer!r}")
        mid_epoch = state.batch > 0
        if mid_epoch and state.data_shape != data_shape:
            raise ValueError(
                f"state: it stopped mid-epoch on data of shape (N, D, K, batch) = {tuple(state.data_shape)}, "
                f"found {tuple(data_shape)}")
        processes = self.comm.size if self.parallel else 0
        if mid_epoch and len(state.rank_rngs) != processes:
            raise ValueError(f"state: it stopped mid-epoch in a run of {max(1, len(state.rank_rngs))} "
                             f"process(es), not {max(1, processes)}; continue it with as many")
        if mid_epoch:
            try:
                self.source.check_order(state.order)
            except ValueError as e:
                raise ValueError(f"state: it stopped mid-epoch on other data: {e}") from None
            steps = self.source.steps(state.order)
            if state.batch >= steps:
                raise ValueError(f"state: batch {state.batch} is beyond the epoch's {steps} batches")
        state = state.copy()
        fresh.load_state_dict(*state.optimizer.state_dict())
        state.optimizer = fresh
        state.data_shape = data_shape
        return state

    # -- one batch ---------------------------------------------------------------------
    def _step(self, k: int, n_batches: int) -> None:
        net, st, ws = self.net, self.state, self.ws
        last = k == n_batches - 1
        if n_batches > 1 or ws.n == 0 or self.parallel:  # a single batch is gathered once
            self.source.fill(ws, st.order, k)
        rng = self.mask_rng if self.dropout > 0 else None
        rows = ws.n
        if self.fused:
            J, g2 = self.objective.value_and_step(ws, self.optimizer, st.optimizer, rng, norm=last)
            if not math.isfinite(J):
                self._diverged(J)  # nothing was updated: the weights are the last finite ones
        else:
            if self.parallel:
                J, g2, rows = self._reduced_gradient(ws, rng)
            else:
                J, grad = self.objective.value_and_grad(net.theta, ws, rng)
                g2 = float(np.dot(grad, grad))
            if not (math.isfinite(J) and math.isfinite(g2)):
                self._diverged(J)
            grad = self.objective.grad
            if self.clip_norm is not None and g2 > self.clip_norm ** 2:
                grad *= self.clip_norm / math.sqrt(g2)
            self.optimizer.step(net.theta, grad, st.optimizer)
        if last and not math.isfinite(g2):  # (a gradient overflowing with a finite loss)
            self._diverged(J)
        if self.max_norm is not None:
            for W, norms in zip(self.weight_rows, self.col_norms):
                np.einsum("ij,ij->j", W, W, out=norms)
                np.sqrt(norms, out=norms)
                np.maximum(norms, self.max_norm, out=norms)
                np.divide(self.max_norm, norms, out=norms)
                W *= norms
        st.loss_sum += J * rows
        if last:
            st.grad_norm_sq = g2
        for hook in self._batch_end:
            hook(k, J, net, st)

    def _reduced_gradient(self, ws, rng) -> tuple[float, float, float]:
        """Data-parallel: this rank's part of the batch, summed over every rank by one
        in-place allreduce of the gradient buffer, which carries the loss, the weights,
        the rows and the flags (a non-finite loss, a signal) with it. Every rank gets
        the same numbers, so every rank takes the same step or stops at the same batch."""
        objective = self.objective
        loss_sum, weight, _ = objective.sum_and_grad(self.net.theta, ws, rng)
        carried = objective.buffer[self.net.n_params:]
        carried[:] = (loss_sum if math.isfinite(loss_sum) else 0.0, weight, ws.n,
                      not math.isfinite(loss_sum), self.signalled == "interrupted",
                      self.signalled == "terminated")
        self.comm.allreduce(objective.buffer)
        loss_sum, weight, rows, nonfinite, interrupted, terminated = (float(v) for v in carried)
        if terminated or interrupted:
            self.interrupted = "terminated" if terminated else "interrupted"
        if nonfinite:
            return math.inf, math.nan, rows
        J = objective.finish(loss_sum, weight)
        grad = objective.grad
        return J, float(np.dot(grad, grad)), rows

    def _diverged(self, J):
        net, st = self.net, self.state
        if not np.all(np.isfinite(net.theta)):
            np.copyto(net.theta, st.last_good)
        st.history.stop_reason = "diverged"
        self._sync()
        raise DivergenceError(
            f"training diverged at epoch {st.epoch + 1}, batch {st.batch + 1}: the loss is {J} "
            f"with learning rate {st.optimizer.learning_rate:g}; try a smaller learning rate "
            "(or gradient clipping). The network keeps its last finite weights.",
            st.epoch + 1, st.batch + 1, st)

    # -- epochs ------------------------------------------------------------------------
    def run(self, epochs: int = 100) -> TrainState:
        """Run ``epochs`` more epochs (finishing first an epoch left half done) and
        return the state; the network holds the trained weights (the best ones, with
        early stopping)."""
        return self.run_until(self.state.epoch + check_int("epochs", epochs, 1), stopped_too=False)

    def run_until(self, epochs: int, stopped_too: bool = True) -> TrainState:
        """Run until the run has done ``epochs`` epochs in all (counting those of the state
        it continues), and return the state. A run that has done them already, or that a
        stopping rule ended (unless ``stopped_too`` is False), trains no further: its
        callbacks end it again (early stopping restores its best weights), so that the
        network holds what the finished run left."""
        end = check_int("epochs", epochs, 1)
        # whatever NumPy's global error settings (core.network's UNDERFLOW): overflow is the
        # divergence guard's to report
        with all_ranks_or_none(self.comm), self._blas_threads(), \
                np.errstate(over="ignore", invalid="ignore", under="ignore"):
            # overflow on the way to divergence is caught explicitly (DivergenceError), not warned about
            if threading.current_thread() is not threading.main_thread():
                return self._run(end, stopped_too)

            def on_signal(signum, frame):  # finish the batch in progress, then stop cleanly
                self.signalled = "terminated" if signum == signal.SIGTERM else "interrupted"

            previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                return self._run(end, stopped_too)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _run(self, end: int, stopped_too: bool) -> TrainState:
        net, st, h = self.net, self.state, self.state.history
        hooks = ([self.diagnostics] if self.diagnostics else []) + self.callbacks
        batch_begin = [cb.on_batch_begin for cb in hooks if hasattr(cb, "on_batch_begin")]
        self._batch_end = [cb.on_batch_end for cb in hooks if hasattr(cb, "on_batch_end")]
        if self.diagnostics:
            self.diagnostics.on_train_begin(net, st)
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin(net, st)
            saved = st.callbacks.get(_callback_key(i, cb))
            if saved is not None:
                cb.load_state_dict(*saved)
        stop = h.stop_reason if h.stopped and stopped_too else ""
        while st.epoch < end and not stop:
            if st.batch == 0:
                st.optimizer.learning_rate = self.schedule(self.optimizer.learning_rate, st.epoch, end)
                st.order = self.source.order(self.rng if self.shuffle else None)
                np.copyto(st.last_good, net.theta)
                st.loss_sum = st.grad_norm_sq = st.epoch_time = 0.0
            for cb in self.callbacks:
                if hasattr(cb, "on_epoch_begin"):
                    cb.on_epoch_begin(st.epoch, net, st)
            t0 = time.perf_counter()
            n_batches = self.source.steps(st.order)
            while st.batch < n_batches:
                for hook in batch_begin:
                    hook(st.batch, net, st)
                self._step(st.batch, n_batches)
                st.batch += 1
                self.blas.tick()
                if not self.parallel:
                    self.interrupted = self.signalled
                if self.interrupted and st.batch < n_batches:
                    st.epoch_time += time.perf_counter() - t0
                    self._interrupt()
            if not np.all(np.isfinite(net.theta)):
                self._diverged(float("nan"))
            # (a signal during the epoch's last batch: the epoch ends first, so that the state
            # saved is at a batch boundary of the next epoch, as every checkpoint is)
            stop = self._end_epoch(time.perf_counter() - t0, end)
            if stop:  # recorded before the last checkpoint, so that resuming it knows the run is over
                h.stop_reason, h.stopped = stop, True
            saved = self.checkpoint and (st.epoch % self.checkpoint_every == 0 or stop or st.epoch == end)
            if saved:
                self.save(self.checkpoint)
            if not self.parallel:
                self.interrupted = self.signalled
            if self.interrupted and st.epoch < end and not stop:  # (a finished run just ends)
                self._interrupt(saved=saved)
        h.stop_reason, h.stopped = stop or f"reached the maximum of {end} epochs", bool(stop)
        self._sync()
        for cb in self.callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(net, h)
        if self.parallel:  # (early stopping restored its best weights on rank 0)
            self.comm.broadcast(net.theta)
        return st

    def _interrupt(self, saved: bool = False):
        """Stop at this batch boundary: the checkpoint written (if there is one), then
        TrainingInterrupted."""
        self._sync()
        if self.checkpoint and not saved:
            self.save(self.checkpoint)
        raise TrainingInterrupted(self.state, self.checkpoint, self.interrupted)

    def _end_epoch(self, seconds: float, end: int) -> str:
        net, st, h, comm = self.net, self.state, self.state.history, self.comm
        h.loss.append(st.loss_sum / self.source.n_samples)
        h.grad_norm.append(math.sqrt(st.grad_norm_sq))
        h.learning_rate.append(st.optimizer.learning_rate)
        vl = vm = float("nan")
        if self.validation is not None and comm.rank == 0:
            vl, vm = self._validate()
        if self.parallel:  # rank 0's numbers drive every rank's schedule
            self._check_same_theta()
            vl, vm = comm.broadcast_object((vl, vm))
        h.val_loss.append(vl)
        h.val_metric.append(vm)
        h.time.append(st.epoch_time + seconds)
        epoch = st.epoch
        st.epoch, st.batch = st.epoch + 1, 0
        st.loss_sum = st.grad_norm_sq = st.epoch_time = 0.0
        self.schedule.observe(h.loss[-1] if math.isnan(vl) else vl)
        st.schedule = self.schedule.state_dict()
        stop = ""
        if self.grad_tol is not None and h.grad_norm[-1] < self.grad_tol:
            stop = f"gradient norm {h.grad_norm[-1]:.3g} below the tolerance {self.grad_tol:g}"
        if self.diagnostics:
            self.diagnostics.on_epoch_end(epoch, h, net)
        for cb in self.callbacks:
            if hasattr(cb, "on_epoch_end") and cb.on_epoch_end(epoch, h, net) and not stop:
                stop = getattr(cb, "stop_reason", "") or f"stopped by {type(cb).__name__}"
        return comm.broadcast_object(stop) if self.parallel else stop

    def _validate(self) -> tuple[float, float]:
        """The validation loss (the data term) and metric, a batch at a time."""
        net, source = self.net, self.validation
        ws = self._val_ws
        order = source.order(None)
        K = net.sizes[-1]
        o, T = np.empty((source.n_samples, K), net.dtype), np.empty((source.n_samples, K), net.dtype)
        w = np.empty(source.n_samples, net.dtype) if source.weighted else None
        loss = weight = 0.0
        start = 0
        for k in range(source.steps(order)):
            b = source.fill(ws, order, k)
            forward(net, ws, b)
            loss += output_delta(net, ws, b, ws.T, mean=False)
            weight += ws.total_weight
            o[start:start + b], T[start:start + b] = mean_output(net, ws, b), ws.T[:b]
            if w is not None:
                w[start:start + b] = ws.w[:b]
            start += b
        return loss / weight, score_outputs(net.likelihood, o, T, w)

    def _check_same_theta(self) -> None:
        """Every rank took the same steps: their weights must agree bit for bit."""
        digests = self.comm.allgather_object(hashlib.sha256(self.net.theta.tobytes()).hexdigest())
        if len(set(digests)) > 1:
            raise RuntimeError(f"distributed: the ranks' weights differ after epoch {self.state.epoch + 1} "
                               f"(digests {digests}); their steps were not the same")

    def _sync(self) -> None:
        """Bring the state up to date: the iterate, the RNGs and the callbacks' states
        (collective under data-parallel training: every rank's dropout generator)."""
        st = self.state
        np.copyto(st.theta, self.net.theta)
        st.rng = self.rng.bit_generator.state
        if self.parallel:
            st.rank_rngs = self.comm.allgather_object(self.mask_rng.bit_generator.state)
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict"):
                scalars, arrays = cb.state_dict()
                st.callbacks[_callback_key(i, cb)] = (dict(scalars), {k: v.copy() for k, v in arrays.items()})

    def data_digest(self) -> str:
        """A fingerprint of the training data: every target and weight, and a fixed
        sample of at most 1024 evenly spaced rows of X in the network's dtype (cheap
        for data of any size, and it tells other data apart); for blocks, their sizes
        and the first block's rows (:meth:`Blocks.digest`)."""
        if self._digest is not None:
            return self._digest
        if isinstance(self._data, Blocks):
            self._digest = self._data.digest()
            return self._digest
        X, T, w = self._data
        h = hashlib.sha256()
        step = max(1, X.shape[0] // 1024)
        sample = X[::step]
        if is_sparse(sample):  # its stored values and where they are
            sample = sample.tocsr()
            for part in (sample.indptr, sample.indices):
                h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
            sample = sample.data
        h.update(np.ascontiguousarray(sample, dtype=self.net.dtype).tobytes())
        h.update(np.ascontiguousarray(T).tobytes())
        if w is not None:
            h.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
        self._digest = h.hexdigest()[:32]
        return self._digest

    def save(self, path: str) -> None:
        """Write the run's state as a checkpoint (see :mod:`deltaprop.training.checkpoints`);
        under data-parallel training every rank calls this and rank 0 writes."""
        self._sync()
        if not self.parallel:
            self.state.data_digest = self.data_digest()
            save_checkpoint(path, self.net, self.state, self.optimizer)
            return
        failed = None
        if self.comm.rank == 0:
            try:
                self.state.data_digest = self.data_digest()
                save_checkpoint(path, self.net, self.state, self.optimizer)
            except Exception as e:  # every rank must learn of it, and go on only once it is written
                failed = f"{type(e).__name__}: {e}"
        failed = self.comm.broadcast_object(failed)
        if failed:
            raise RuntimeError(f"checkpoint: rank 0 could not write {path}: {failed}")

    def _block_source(self, blocks: Blocks, batch_size: int, buffer_blocks: int = 4,
                      prefetch: bool = True) -> BlockSource:
        net = self.net
        target_map = blocks.target_map

        def encode(y, n):
            return net.encode_targets(y if target_map is None else target_map(y), n)

        return BlockSource(blocks, batch_size, net.dtype, encode, blocks.transform, buffer_blocks, prefetch,
                           check=block_check(net))

    def _probe(self, X, T, train_rows):
        """The rows diagnostics measure: evenly spaced training rows, or a block's first ones."""
        if X is None:
            blocks = self.source.blocks
            Xb, yb, _ = blocks.read(0, block_check(self.net))
            n = min(len(Xb), len(probe_rows(blocks.n_samples)))
            Xp = np.array(Xb[:n], dtype=self.net.dtype)
            if blocks.transform is not None:
                blocks.transform(Xp)
            return Xp, self.source.encode(yb[:n], n)
        rows = probe_rows(len(train_rows) if train_rows is not None else X.shape[0])
        rows = rows if train_rows is None else train_rows[rows]
        return self.net.check_X(X[rows]), T[rows]

    # multiply-adds; on the 2-core development machine one BLAS thread was faster below it
    # (784-256-128-10: batch 32, 0.85 s against 1.02 s an epoch; batch 64 and up, two threads won)
    SMALL_PRODUCT = 10_000_000

    def _blas_threads(self) -> BlasThreads:
        """The run's BLAS threads (:mod:`deltaprop.threads`): from the size of its products and
        the CPUs free, measured again as it goes. Ranks that share a machine share its cores."""
        self.blas = BlasThreads(largest_product(self.net.sizes, self.source.batch_size), self.SMALL_PRODUCT,
                                self.blas_threads, share=self.comm.local_size)
        return self.blas


def block_check(net):
    """``check(X, name)`` for :class:`Blocks`: the network's own input check, naming the block."""
    return lambda X, name: net.check_X(X, name, convert=False)


def _check_fraction(validation) -> None:
    if not 0 < validation < 1:
        raise ValueError(f"validation: expected a fraction in (0, 1), found {validation}")


def _callback_key(i: int, cb) -> str:
    return f"{i}.{type(cb).__name__}"


def train(net, X, y=None, *, epochs: int = 100, sample_weight=None, optimizer: str | Optimizer = "adam",
          batch_size: int | None = 32, validation=None, schedule: str | Schedule | None = None, l2: float = 0.0,
          alpha: float = 0.0, dropout: float = 0.0, clip_norm: float | None = None, max_norm: float | None = None,
          grad_tol: float | None = None, early_stopping: int | EarlyStopping | None = None,
          callbacks: Sequence[Callback] = (), shuffle: bool = True, seed: int | np.random.Generator | None = None,
          state: TrainState | None = None, checkpoint: str | None = None, checkpoint_every: int = 1,
          resume: str | None = None, diagnostics: bool = False, blas_threads: int | None = None,
          distributed=None, buffer_blocks: int = 4, kernels: str | None = None,
          label_smoothing: float = 0.0) -> TrainState:
    """Train ``net`` in place by backpropagation and gradient descent.

    Parameters
    ----------
    net : Network
    X : array-like of shape (n_samples, D_0), or Blocks
        Rows in memory or memory-mapped (read a batch at a time, converted to the network's
        dtype as they are gathered), or :class:`~deltaprop.data.blocks.Blocks`: data in
        ``.npy`` files, HDF5, Zarr or Parquet, read a buffer of blocks at a time.
    y : array-like, or None with Blocks (which carry their targets)
        Targets for the network's likelihood (class indices or one-hot, 0/1, reals, counts).
    epochs : int
        How many passes over the data this call makes (when continuing a ``state`` that
        stopped mid-epoch, finishing that epoch is the first). With ``resume``, the run's
        total instead, as in Keras' ``BackupAndRestore``: the same call, repeated after a
        crash, finishes the same run.
    sample_weight : array-like of shape (n_samples,), optional
        Per-sample weights: J becomes the weighted mean of -log p(y|x).
    optimizer : str or Optimizer, default "adam"
        An optimizer object (``deltaprop.SGD(learning_rate=0.1)``) or a name with
        default settings (``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``,
        ``adam``, ``adamw``). Never changed by training.
    batch_size : int or None, default 32
        None for full-batch gradient descent (eq. (10) on the whole criterion), 1 for
        online learning. The last, shorter batch of an epoch is used, not dropped.
    validation : float, (X_val, y_val), (X_val, y_val, sample_weight_val) or Blocks, optional
        Validation data, or the fraction of (X, y) to hold out (stratified by class
        for classification; with ``sample_weight``, the held-out rows keep theirs;
        with Blocks, whole blocks are held out). The validation loss and metric are
        weighted when there are weights. Never a copy of the training data: it is
        read a batch at a time.
    schedule : str or Schedule, optional
        Learning-rate schedule: ``constant``, ``step``, ``exponential``,
        ``inverse_time``, ``cosine``, ``plateau`` or an object (copied, not changed).
    l2 : float
        L2 weight decay lambda: J + lambda/2 sum ||W[l][:-1]||^2 (bias rows never decayed).
    alpha : float
        L2 penalty as scikit-learn scales it: alpha / (2 n_batch) sum ||W[l][:-1]||^2,
        n_batch being the batch's rows (or the sum of its sample weights); see
        :class:`~deltaprop.core.objective.Objective`.
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
        Patience in epochs (or an object whose settings are used), monitoring the
        validation loss; restores the best weights.
    callbacks : sequence of Callback
        Objects with any of the hooks of :class:`Callback`.
    shuffle : bool
        Reshuffle the samples every epoch (mini-batch training).
    seed : int or Generator, optional
        Drives shuffling, dropout and the validation split; the same seed gives
        bit-identical weights and history on the same machine.
    state : TrainState, optional
        A state returned by an earlier call (or loaded from a checkpoint): training
        continues from it, bit-identically. It is copied, not changed.
    checkpoint : str, optional
        Path of a checkpoint written atomically every ``checkpoint_every`` epochs, at
        the end, and on Ctrl-C or SIGTERM (at a batch boundary: after the epoch's end when
        the signal came during its last batch). A kill at any moment leaves the previous
        checkpoint or the new one, never a mix.
    resume : str, optional
        A checkpoint to continue from, until the run has done ``epochs`` epochs in all:
        ``state=load_checkpoint(resume)`` with the data (shape and fingerprint) and the
        settings checked to be the run's. ``train(..., epochs=N, checkpoint=ck, resume=ck)``
        is idempotent: its first call starts the run (``ck`` does not exist yet), a call
        after a crash continues it, bit for bit as if uninterrupted, and a call after the run
        finished (its epochs done, or a stopping rule) trains no further and leaves the
        network as the run did (early stopping's best weights restored).
    diagnostics : bool
        Measure every layer at each epoch's end (gradient and weight norms, the
        update/weight ratio, dead and saturated units) into ``history.layers``;
        :func:`deltaprop.diagnose` says in words what looks wrong.
    blas_threads : int, optional
        At most this many threads for the BLAS matrix products while training (through
        threadpoolctl). Either way (:mod:`deltaprop.threads`): one thread when the
        batch's largest product is small (under 10 million multiply-adds, e.g. batch 32
        on a 784-256 layer), where thread hand-offs cost more than they save; otherwise
        one per CPU that other processes leave free (affinity and cgroup quota
        included), measured again every half second, and never more than the BLAS
        library allowed when the run started (``OMP_NUM_THREADS``, threadpoolctl).

    distributed : {"mpi", "torch"} or Communicator, optional
        Data-parallel training, one process per rank (started by ``mpiexec -n P`` or
        ``torchrun``): each rank computes its part of every batch, one in-place allreduce
        adds the parts, and every rank takes the same step. Rank 0 validates, runs the
        callbacks and writes the checkpoints; an error on one rank ends all of them. See
        ``docs/scale.md``.
    buffer_blocks : int
        With Blocks: how many blocks are read, and their rows shuffled, together.
    kernels : {"numpy", "numba"}, optional
        Who does the element-wise work between the matrix products: NumPy (the
        reference) or fused Numba kernels (``pip install 'deltaprop[fast]'``); by default
        ``$DELTAPROP_KERNELS``, else Numba when it is installed and the run is large enough
        to gain from it (rows times parameters at least
        :data:`~deltaprop.core.kernels.NUMBA_MIN_WORK`), else NumPy. Both give the same
        results to float32 rounding; each path and seed gives the same bits every time.
    label_smoothing : float
        Train on class targets moved this far towards the uniform distribution,
        ``(1 - s) T + s / K`` (categorical and Bernoulli outputs); validation losses are on
        the true targets.

    Returns
    -------
    TrainState
        With ``history`` (a :class:`History`); pass it back as ``state=`` to continue.

    Raises
    ------
    DivergenceError
        When the loss or gradient stops being finite (the last finite weights are kept).
    TrainingInterrupted
        On Ctrl-C or SIGTERM, between two batches, after writing the checkpoint.
    """
    with all_ranks_or_none(distributed) as comm:
        first_call = resume is not None and checkpoint is not None and not os.path.exists(resume) and \
            os.path.abspath(resume) == os.path.abspath(checkpoint)  # (an idempotent call starts the run)
        if resume is not None and not first_call:
            if state is not None:
                raise ValueError("resume: give a checkpoint or a state to continue, not both")
            state = load_checkpoint(resume, net)
        trainer = Trainer(
            net, X, y, sample_weight=sample_weight, optimizer=optimizer, batch_size=batch_size,
            validation=validation, schedule=schedule, l2=l2, alpha=alpha, dropout=dropout, clip_norm=clip_norm,
            max_norm=max_norm, grad_tol=grad_tol, early_stopping=early_stopping, callbacks=callbacks,
            shuffle=shuffle, seed=seed, state=state, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            blas_threads=blas_threads, diagnostics=diagnostics,
            resume=None if first_call or resume is None else str(resume),
            distributed=comm, buffer_blocks=buffer_blocks, kernels=kernels, label_smoothing=label_smoothing)
        if resume is None:
            return trainer.run(epochs)
        return trainer.run_until(check_int("epochs", epochs, 1))


@contextmanager
def all_ranks_or_none(distributed):
    """The communicator for ``distributed``, in a context that ends every rank when one
    fails alone (the others would wait for it forever in the next collective).

    Errors that every rank raises together (divergence and interruption, decided from
    the numbers of the allreduce) are raised as usual, on every rank.
    """
    comm = get_communicator(distributed)
    try:
        yield comm
    except (DivergenceError, TrainingInterrupted):
        raise
    except BaseException as e:
        if comm.size > 1:
            comm.abort(f"deltaprop: error on rank {comm.rank} of {comm.size}: {type(e).__name__}: {e}")
        raise
