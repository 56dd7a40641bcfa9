"""``train``: a whole training run in one call, or the rest of one from its state or checkpoint.

:func:`train` is :class:`~deltaprop.training.loop.Trainer` built (its settings
gathered in a :class:`~deltaprop.training.settings.TrainSettings`) and run for
``epochs`` epochs (the loop, what it does and what it guarantees, is described in
:mod:`deltaprop.training.loop`); with ``resume``, it first loads the checkpoint the
run wrote, so that the same call, repeated after a crash, finishes the same run.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..optim.optimizers import Optimizer
from ..optim.schedules import Schedule
from ..validation import check_int
from .callbacks import Callback, EarlyStopping
from .checkpoints import load_checkpoint
from .loop import Trainer
from .parallel import all_ranks_or_none
from .settings import TrainSettings
from .state import TrainState


def train(net, X, y=None, *, epochs: int = 100, sample_weight=None, optimizer: str | Optimizer = "adam",
          batch_size: int | None = 32, validation=None, schedule: str | Schedule | None = None, l2: float = 0.0,
          alpha: float = 0.0, dropout: float = 0.0, clip_norm: float | None = None, max_norm: float | None = None,
          grad_tol: float | None = None, early_stopping: int | EarlyStopping | None = None,
          callbacks: Sequence[Callback] = (), shuffle: bool = True, seed: int | np.random.Generator | None = None,
          state: TrainState | None = None, checkpoint: str | None = None, checkpoint_every: int = 1,
          resume: str | None = None, diagnostics: bool = False, blas_threads: int | None = None,
          distributed=None, buffer_blocks: int = 4, kernels: str | None = None,
          label_smoothing: float = 0.0, backend: str | None = None) -> TrainState:
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
    sample_weight : array-like of shape (n_samples,) or (n_samples, members), optional
        Per-sample weights: J becomes the weighted mean of -log p(y|x). An ensemble
        (``net.members`` > 1) also takes a column for each member: member m's J is then
        its own weighted mean, and a row of weight 0 in its column never trains it (how
        cross-fitting trains its members together).
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
    backend : {"numpy", "cupy", "torch"}, optional
        The array library the run's arrays live in (:data:`deltaprop.BACKENDS`): NumPy by
        default; ``"cupy"`` trains on an NVIDIA GPU (``pip install 'deltaprop[gpu]'``).
        The network moves there for the run and comes back where it was; the data stays
        on the host and goes over a batch at a time. One process only, without
        ``diagnostics``.

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
        settings = TrainSettings(
            optimizer=optimizer, batch_size=batch_size, schedule=schedule, l2=l2, alpha=alpha, dropout=dropout,
            label_smoothing=label_smoothing, clip_norm=clip_norm, max_norm=max_norm, grad_tol=grad_tol,
            early_stopping=early_stopping, shuffle=shuffle, seed=seed, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, blas_threads=blas_threads, buffer_blocks=buffer_blocks,
            kernels=kernels, backend=backend, diagnostics=diagnostics)
        home = net.backend
        try:
            trainer = Trainer(net, X, y, sample_weight=sample_weight, validation=validation, settings=settings,
                              callbacks=callbacks, state=state, distributed=comm,
                              resume=None if first_call or resume is None else str(resume))
            if resume is None:
                return trainer.run(epochs)
            return trainer.run_until(check_int("epochs", epochs, 1))
        finally:
            net.to(home)
