"""How a run trains: every setting of :func:`~deltaprop.training.train.train` but the data,
``epochs``, the callbacks, where the run starts and the ranks, checked once, in one object.

:class:`TrainSettings` is what a :class:`~deltaprop.training.loop.Trainer` takes; its
:meth:`~TrainSettings.record` is what a checkpoint keeps, so that resuming with other
settings is refused (:mod:`deltaprop.training.resume`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.backend import BACKENDS
from ..core.kernels import KERNELS
from ..io.files import json_safe
from ..optim.optimizers import Optimizer, get_optimizer
from ..optim.schedules import Schedule, get_schedule
from ..registry import lookup
from ..validation import check_float, check_fraction, check_int
from .callbacks import EarlyStopping


def _optional(name: str, value, **bounds):
    return None if value is None else check_float(name, value, 0.0, **bounds)


@dataclass
class TrainSettings:
    """The settings of one training run, checked when made.

    Each means what the argument of the same name of :func:`deltaprop.train` means.
    ``optimizer`` and ``schedule`` may be given by name; they are kept as objects, which a
    run never changes (it trains with a copy of the schedule's state).

    Parameters
    ----------
    optimizer : str or Optimizer, default "adam"
        The optimizer, or its name with default settings.
    batch_size : int or None, default 32
        Rows per step; None for full-batch gradient descent.
    schedule : str or Schedule, optional
        The learning-rate schedule (constant by default).
    l2 : float
        L2 weight decay, never on the bias rows.
    alpha : float
        The L2 penalty as scikit-learn scales it (over the batch's rows).
    dropout : float
        Inverted-dropout rate on the hidden layers, in [0, 1).
    label_smoothing : float
        How far class targets move towards the uniform distribution, in [0, 1).
    clip_norm : float, optional
        The largest gradient norm a step keeps (:class:`~deltaprop.optim.transforms.ClipNorm`).
    max_norm : float, optional
        The largest norm of a unit's incoming weights after each step
        (:class:`~deltaprop.optim.transforms.MaxNorm`).
    grad_tol : float, optional
        Stop once an epoch's gradient norm is below it.
    early_stopping : int or EarlyStopping, optional
        Patience in epochs on the validation loss, or the object whose settings are used.
    shuffle : bool
        Reshuffle the rows every epoch.
    seed : int or Generator, optional
        Drives shuffling, dropout and the validation split.
    checkpoint : str, optional
        Where the run's state is written (atomically).
    checkpoint_every : int
        Epochs between checkpoints.
    blas_threads : int, optional
        At most this many BLAS threads (:mod:`deltaprop.threads`).
    buffer_blocks : int
        With Blocks: how many blocks are read and shuffled together.
    kernels : {"numpy", "numba"}, optional
        Who does the element-wise work (:mod:`deltaprop.core.kernels`).
    backend : {"numpy", "cupy", "torch"}, optional
        The array library the run's arrays live in (:mod:`deltaprop.core.backend`).
    diagnostics : bool
        Measure every layer at each epoch's end.
    """

    optimizer: str | Optimizer = "adam"
    batch_size: int | None = 32
    schedule: str | Schedule | None = None
    l2: float = 0.0
    alpha: float = 0.0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    clip_norm: float | None = None
    max_norm: float | None = None
    grad_tol: float | None = None
    early_stopping: int | EarlyStopping | None = None
    shuffle: bool = True
    seed: int | np.random.Generator | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 1
    blas_threads: int | None = None
    buffer_blocks: int = 4
    kernels: str | None = None
    backend: str | None = None
    diagnostics: bool = False

    def __post_init__(self):
        self.optimizer = get_optimizer(self.optimizer)
        self.schedule = get_schedule(self.schedule)
        self.batch_size = None if self.batch_size is None else check_int("batch_size", self.batch_size, 1)
        self.l2 = check_float("l2", self.l2, 0.0)
        self.alpha = check_float("alpha", self.alpha, 0.0)
        self.dropout = check_fraction("dropout", self.dropout, closed_low=True)
        self.label_smoothing = check_fraction("label_smoothing", self.label_smoothing, closed_low=True)
        self.clip_norm = _optional("clip_norm", self.clip_norm, strict=True)
        self.max_norm = _optional("max_norm", self.max_norm, strict=True)
        self.grad_tol = _optional("grad_tol", self.grad_tol, strict=True)
        if self.early_stopping is False:
            self.early_stopping = None
        elif self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStopping):
            self.early_stopping = check_int("early_stopping", self.early_stopping, 1)
        self.shuffle = bool(self.shuffle)
        self.checkpoint_every = check_int("checkpoint_every", self.checkpoint_every, 1)
        self.blas_threads = None if self.blas_threads is None else check_int("blas_threads", self.blas_threads, 1)
        self.buffer_blocks = check_int("buffer_blocks", self.buffer_blocks, 1)
        self.kernels = None if self.kernels is None else lookup("kernels", KERNELS, self.kernels)
        self.backend = None if self.backend is None else lookup("backend", BACKENDS, self.backend)
        self.diagnostics = bool(self.diagnostics)

    def early_stopping_callback(self) -> EarlyStopping | None:
        """A fresh :class:`EarlyStopping` for a run, from the patience or the object's settings."""
        if self.early_stopping is None:
            return None
        if isinstance(self.early_stopping, EarlyStopping):
            return EarlyStopping(**self.early_stopping.settings())
        return EarlyStopping(patience=self.early_stopping)

    def record(self) -> dict:
        """The settings that decide the steps, as a checkpoint keeps them (JSON-safe): a run
        continues only with the same ones."""
        settings = {"optimizer": {"name": self.optimizer.name, **self.optimizer.hyperparameters()},
                    "schedule": {"name": self.schedule.name, **self.schedule.settings()},
                    "batch_size": self.batch_size, "shuffle": self.shuffle, "l2": self.l2, "alpha": self.alpha,
                    "dropout": self.dropout, "clip_norm": self.clip_norm, "max_norm": self.max_norm}
        if self.label_smoothing:  # (absent when off: checkpoints written before it still resume)
            settings["label_smoothing"] = self.label_smoothing
        return json_safe(settings)
