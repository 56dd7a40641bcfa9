"""Training: eq. (10) repeated "until the gradient is zero", and what makes it work in practice.

The :class:`Trainer` runs mini-batch gradient descent (full-batch when ``batch_size`` is
None: the lecture's eq. (10) exactly; online when it is 1) with any optimizer of
:mod:`deltaprop.optim`, a learning-rate schedule, L2 weight decay (never on the
bias rows), inverted dropout, gradient-norm clipping and max-norm constraints; it
stops on max epochs, a gradient-norm tolerance, early stopping or a callback,
and says which. It never leaves NaN weights: a loss or gradient that stops being
finite raises :class:`DivergenceError` with the last finite weights kept.

Everything a run changes is in its :class:`TrainState` (the iterate, the
optimizer's state, the schedule's, the RNG's, the position in the epoch, the
history): :func:`~deltaprop.training.train.train` returns it, takes it back with
``state=`` to continue (k epochs, then n - k more, is n epochs bit for bit), and
checkpoints save it. The objects passed in (optimizer, schedule, callbacks'
settings) are never changed. The per-batch loop allocates nothing: each batch is
gathered straight into the objective's buffers.

Around the loop, each in a module of its own: the run's settings
(:mod:`~deltaprop.training.settings`), its data, validation split and fingerprint
(:mod:`deltaprop.data.training_data`), the step with the gradient's transforms and the
constraints (:meth:`Objective.step <deltaprop.core.objective.Objective.step>`,
:mod:`deltaprop.optim.transforms`), data-parallel pieces (:mod:`~deltaprop.training.parallel`),
how a run ends early (:mod:`~deltaprop.training.errors`), signals
(:mod:`~deltaprop.training.signals`) and continuing a state or checkpoint
(:mod:`~deltaprop.training.resume`).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Sequence

import numpy as np

from ..core.backend import get_backend
from ..core.engine import Workspace
from ..core.kernels import resolve_kernels
from ..core.network import root_seed
from ..core.objective import Objective
from ..data.training_data import VALIDATION_BATCH, TrainingData
from ..diagnostics.health import Diagnostics, probe_batch
from ..metrics import metric_name, score_source
from ..optim.transforms import ClipNorm, MaxNorm
from ..threads import BlasThreads, training_threads
from ..validation import check_int
from .callbacks import Callback, History
from .checkpoints import save_checkpoint
from .communicators import get_communicator
from .errors import DivergenceError, TrainingInterrupted
from .parallel import CARRIED, AllReduce, all_ranks_or_none, check_same_theta
from .resume import check_resume, continued_state
from .settings import TrainSettings
from .signals import signals_noted
from .state import TrainState

Array = np.ndarray


class Trainer:
    """One training run of ``net`` on (X, y), driven epoch by epoch with :meth:`run`.

    :func:`train` is ``Trainer(...).run(epochs)``: the data, callbacks, ``state`` and
    ``distributed`` arguments are :func:`train`'s, every other setting is in ``settings``
    (:class:`~deltaprop.training.settings.TrainSettings`, checked when made), and
    ``resume`` names the checkpoint ``state`` was loaded from, so that its data
    fingerprint and settings are checked against this run's. Calling :meth:`run` again
    continues the same run, which is how a caller can act between epochs without paying
    for the checks of the data again.

    The Trainer runs the loop: batches, the schedule, callbacks, stopping, the divergence
    guard and checkpoints. The data and its split are a
    :class:`~deltaprop.data.training_data.TrainingData`; each step is the objective's
    (:meth:`~deltaprop.core.objective.Objective.step`, through the gradient's transforms),
    followed by the constraints (:mod:`deltaprop.optim.transforms`).

    Parameters
    ----------
    net : Network
        Trained in place, on the array backend of ``settings.backend`` (it moves there when
        the Trainer is made; :func:`train` brings it back after the run).
    X : array-like or Blocks
        The inputs (or Blocks, which carry their targets).
    y : array-like, optional
        The targets (None with Blocks).
    sample_weight : array-like, optional
        Per-row weights of the criterion.
    validation : float, (X_val, y_val), (X_val, y_val, w_val) or Blocks, optional
        The rows to validate on, or the fraction of X to hold out.
    settings : TrainSettings, optional
        Every other setting of the run (defaults: ``TrainSettings()``).
    callbacks : sequence of Callback
        Objects with any of :class:`~deltaprop.training.callbacks.Callback`'s hooks.
    state : TrainState, optional
        A state to continue from (copied, not changed).
    distributed : {"mpi", "torch"} or Communicator, optional
        Data-parallel training over these ranks.
    resume : str, optional
        The checkpoint ``state`` was loaded from, whose data and settings must be this run's.

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
    settings : TrainSettings
    data : TrainingData
    transforms : list
        The gradient's transforms, in order (the allreduce, clipping).
    constraints : list
        What acts on the weights after each step (max-norm).
    """

    def __init__(self, net, X, y=None, *, sample_weight=None, validation=None,
                 settings: TrainSettings | None = None, callbacks: Sequence[Callback] = (),
                 state: TrainState | None = None, distributed=None, resume: str | None = None):
        self.net = net
        self.settings = s = settings if settings is not None else TrainSettings()
        if not isinstance(s, TrainSettings):
            raise TypeError(f"settings: expected TrainSettings, found {type(s).__name__}")
        self.comm = comm = get_communicator(distributed)
        self.parallel = comm.size > 1
        self.backend = be = get_backend(s.backend if s.backend is not None else net.backend)
        if not be.host and (self.parallel or s.diagnostics):
            raise ValueError(f"backend: {'data-parallel training' if self.parallel else 'diagnostics'} "
                             f"runs on the numpy backend only, not on {be.name!r}")
        net.to(be)  # (for the run: train() brings it back)
        self.optimizer = s.optimizer
        self.schedule = copy.deepcopy(s.schedule)  # its state is the run's, not the caller's
        # rank 0 alone validates, logs and checkpoints: the callbacks are its own
        self.callbacks = list(callbacks) if comm.rank == 0 else []
        stopping = s.early_stopping_callback()
        if stopping is not None and comm.rank == 0:
            self.callbacks.insert(0, stopping)

        seed = s.seed
        if state is not None and seed is not None and not isinstance(seed, np.random.Generator) \
                and root_seed(seed) != state.seed:
            raise ValueError(f"seed: the state to continue was started with seed {state.seed}, found {seed}; "
                             "pass the same seed or none")
        # every rank follows rank 0's seed (shuffling) and starts from its weights
        root = state.seed if state is not None else comm.broadcast_object(root_seed(seed))
        split_seq, loop_seq, rank_seq = np.random.SeedSequence(root).spawn(3)
        if self.parallel and state is None:
            comm.broadcast(net.theta)

        self.data = data = TrainingData(net, X, y, sample_weight=sample_weight, validation=validation,
                                        batch_size=s.batch_size, buffer_blocks=s.buffer_blocks,
                                        rng=np.random.default_rng(split_seq))
        self.source, self.validation = data.source, data.validation
        # (from the whole set's size: every rank of a data-parallel run takes the same path)
        self.kernels = resolve_kernels(s.kernels, work=float(data.n_samples) * net.n_params, backend=be)
        if self.parallel:
            self.source.shard(comm.rank, comm.size)
        # the gradient's way to the weights: transforms in order, the optimizer, then constraints
        self.allreduce = AllReduce(comm) if self.parallel else None
        self.transforms = [self.allreduce] if self.allreduce is not None else []
        if s.clip_norm is not None:
            self.transforms.append(ClipNorm(s.clip_norm))
        self.constraints = [MaxNorm(net, s.max_norm)] if s.max_norm is not None else []
        # one buffer carries the gradient and, after it, what the ranks add up with it
        self.objective = Objective(net, l2=s.l2, dropout=s.dropout, alpha=s.alpha,
                                   carry=len(CARRIED) if self.parallel else 0, kernels=self.kernels,
                                   label_smoothing=s.label_smoothing)
        self.ws = self.objective.workspace(self.source.batch_size, self.source.sparse)
        self._val_ws = None if self.validation is None else Workspace(
            net.sizes, VALIDATION_BATCH, net.dtype, self.objective.ops, self.validation.sparse, net.members)
        # measured on a fixed probe of training rows, it changes nothing of the run; called
        # before the callbacks (which may read it), it is not one of them (their checkpoint keys)
        self.diagnostics = None
        if s.diagnostics and comm.rank == 0:
            self.diagnostics = Diagnostics(*probe_batch(net, data.X, data.T, data.train_rows, self.source))
        data_shape = [int(data.n_samples), int(net.sizes[0]), int(net.sizes[-1]), int(self.source.batch_size)]

        if state is None:
            self.state = TrainState(
                theta=np.array(be.to_host(net.theta)),
                optimizer=self.optimizer.init_state(net.theta, net.layer_slices(), self.kernels),
                schedule=self.schedule.state_dict(), seed=root, rng=np.random.default_rng(loop_seq).bit_generator.state,
                history=History(metric=metric_name(net.task)), last_good=np.empty(net.n_params, net.dtype),
                data_shape=data_shape)
        else:
            if resume is not None:
                check_resume(state, resume, data_shape, self.data_digest(), s.record())
            self.state = continued_state(state, net, self.optimizer, self.kernels, data_shape, self.source,
                                         processes=comm.size if self.parallel else 0)
            be.upload(net.theta, self.state.theta)
            if state.settings.get("schedule", {}).get("name", self.schedule.name) == self.schedule.name:
                self.schedule.load_state_dict(self.state.schedule)
        self.state.settings = s.record()
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

    # -- one batch ---------------------------------------------------------------------
    def _step(self, k: int, n_batches: int) -> None:
        net, st, ws = self.net, self.state, self.ws
        last = k == n_batches - 1
        if n_batches > 1 or ws.n == 0 or self.parallel:  # a single batch is gathered once
            self.source.fill(ws, st.order, k)
        if self.allreduce is not None:  # a signal travels with the gradient
            self.allreduce.signal = self.signalled
        step = self.objective.step(ws, self.optimizer, st.optimizer, self.transforms,
                                   self.mask_rng if self.settings.dropout > 0 else None, norm=last)
        if self.allreduce is not None:
            self.interrupted = self.allreduce.agreed or self.interrupted
        if not step.finite:
            self._diverged(step.J)  # (a fused step that overflowed: the last finite weights come back)
        for constrain in self.constraints:
            constrain()
        st.loss_sum += step.J * step.rows
        if last:
            st.grad_norm_sq = step.sq_norm
        for hook in self._batch_end:
            hook(k, step.J, net, st)

    def _diverged(self, J):
        net, st = self.net, self.state
        if not self._finite():
            self.backend.upload(net.theta, st.last_good)
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
            # overflow on the way to divergence is caught explicitly (DivergenceError), not warned about;
            # a signal finishes the batch in progress, then stops cleanly
            with signals_noted(self._note_signal):
                return self._run(end, stopped_too)

    def _note_signal(self, cause: str) -> None:
        self.signalled = cause

    def _run(self, end: int, stopped_too: bool) -> TrainState:
        net, st, history = self.net, self.state, self.state.history
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
        stop = history.stop_reason if history.stopped and stopped_too else ""
        while st.epoch < end and not stop:
            if st.batch == 0:
                st.optimizer.learning_rate = self.schedule(self.optimizer.learning_rate, st.epoch, end)
                st.order = self.source.order(self.rng if self.settings.shuffle else None)
                np.copyto(st.last_good, self.backend.to_host(net.theta))  # (the state is on the host)
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
            if not self._finite():
                self._diverged(float("nan"))
            # (a signal during the epoch's last batch: the epoch ends first, so that the state
            # saved is at a batch boundary of the next epoch, as every checkpoint is)
            stop = self._end_epoch(time.perf_counter() - t0, end)
            if stop:  # recorded before the last checkpoint, so that resuming it knows the run is over
                history.stop_reason, history.stopped = stop, True
            checkpoint = self.settings.checkpoint
            saved = checkpoint and (st.epoch % self.settings.checkpoint_every == 0 or stop or st.epoch == end)
            if saved:
                self.save(checkpoint)
            if not self.parallel:
                self.interrupted = self.signalled
            if self.interrupted and st.epoch < end and not stop:  # (a finished run just ends)
                self._interrupt(saved=saved)
        history.stop_reason, history.stopped = stop or f"reached the maximum of {end} epochs", bool(stop)
        self._sync()
        for cb in self.callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(net, history)
        if self.parallel:  # (early stopping restored its best weights on rank 0)
            self.comm.broadcast(net.theta)
        return st

    def _finite(self) -> bool:
        """Whether every weight is finite."""
        xp = self.backend.xp
        return bool(self.backend.scalars(xp.all(xp.isfinite(self.net.theta)))[0])

    def _interrupt(self, saved: bool = False):
        """Stop at this batch boundary: the checkpoint written (if there is one), then
        TrainingInterrupted."""
        self._sync()
        checkpoint = self.settings.checkpoint
        if checkpoint and not saved:
            self.save(checkpoint)
        raise TrainingInterrupted(self.state, checkpoint, self.interrupted)

    def _end_epoch(self, seconds: float, end: int) -> str:
        net, st, history, comm = self.net, self.state, self.state.history, self.comm
        history.loss.append(st.loss_sum / self.source.n_samples)
        history.grad_norm.append(math.sqrt(st.grad_norm_sq))
        history.learning_rate.append(st.optimizer.learning_rate)
        vl = vm = float("nan")
        if self.validation is not None and comm.rank == 0:
            vl, vm = score_source(net, self.validation, self._val_ws)
        if self.parallel:  # rank 0's numbers drive every rank's schedule
            check_same_theta(comm, net.theta, st.epoch + 1)
            vl, vm = comm.broadcast_object((vl, vm))
        history.val_loss.append(vl)
        history.val_metric.append(vm)
        history.time.append(st.epoch_time + seconds)
        epoch = st.epoch
        st.epoch, st.batch = st.epoch + 1, 0
        st.loss_sum = st.grad_norm_sq = st.epoch_time = 0.0
        self.schedule.observe(history.loss[-1] if math.isnan(vl) else vl)
        st.schedule = self.schedule.state_dict()
        stop = ""
        tol = self.settings.grad_tol
        if tol is not None and history.grad_norm[-1] < tol:
            stop = f"gradient norm {history.grad_norm[-1]:.3g} below the tolerance {tol:g}"
        if self.diagnostics:
            self.diagnostics.on_epoch_end(epoch, history, net)
        for cb in self.callbacks:
            if hasattr(cb, "on_epoch_end") and cb.on_epoch_end(epoch, history, net) and not stop:
                stop = getattr(cb, "stop_reason", "") or f"stopped by {type(cb).__name__}"
        return comm.broadcast_object(stop) if self.parallel else stop

    def _blas_threads(self) -> BlasThreads:
        """The run's BLAS threads (:mod:`deltaprop.threads`), shared by the ranks on one machine."""
        self.blas = training_threads(self.net.sizes, self.source.batch_size, self.settings.blas_threads,
                                     share=self.comm.local_size)
        return self.blas

    def _sync(self) -> None:
        """Bring the state up to date: the iterate, the RNGs and the callbacks' states
        (collective under data-parallel training: every rank's dropout generator)."""
        st = self.state
        np.copyto(st.theta, self.backend.to_host(self.net.theta))
        st.rng = self.rng.bit_generator.state
        if self.parallel:
            st.rank_rngs = self.comm.allgather_object(self.mask_rng.bit_generator.state)
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict"):
                scalars, arrays = cb.state_dict()
                st.callbacks[_callback_key(i, cb)] = (dict(scalars), {k: v.copy() for k, v in arrays.items()})

    def data_digest(self) -> str:
        """The training data's fingerprint (:meth:`TrainingData.digest`), which checkpoints keep."""
        return self.data.digest()

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

def _callback_key(i: int, cb) -> str:
    return f"{i}.{type(cb).__name__}"
