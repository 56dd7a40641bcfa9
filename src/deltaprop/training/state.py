"""The state of a training run: everything it changes, to continue it exactly."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..optim.optimizers import OptimizerState
from .callbacks import History

Array = np.ndarray


@dataclass
class TrainState:
    """Everything a training run changes, to continue it exactly.

    Attributes
    ----------
    theta : ndarray
        The iterate the run continues from (before early stopping restored its best
        weights into the network, if it did).
    optimizer : OptimizerState
        Step count, current learning rate, moments.
    schedule : dict
        The schedule's state (:meth:`Schedule.state_dict`).
    seed : int
        The run's root seed: the validation split and the RNG stream come from it.
    rng : dict
        The state of the generator that shuffles and draws dropout masks.
    rank_rngs : list of dict
        Under data-parallel training, each rank's generator of dropout masks (the
        shuffling generator above is the same on every rank); empty otherwise.
    epoch, batch : int
        Completed epochs, and batches done in the epoch in progress.
    order : ndarray or None
        The row order of the epoch in progress.
    loss_sum, grad_norm_sq, epoch_time : float
        Running sums of the epoch in progress.
    history : History
    callbacks : dict
        Saved states of callbacks that have ``state_dict`` (key: position and class).
    last_good : ndarray
        The weights at the start of the epoch, restored if it diverges.
    data_shape : list of int
        (n_samples, n_features, n_outputs, batch_size) of the run.
    data_digest : str
        A fingerprint of the training data (a hash of a fixed sample of its rows and
        of every target), so that a checkpoint is not resumed on other data.
    settings : dict
        The run's settings (optimizer, schedule, penalties, batch size...), which a
        resumed run must repeat.
    kernels : str
        The element-wise path the last run took, ``"numpy"`` or ``"numba"``
        (:func:`~deltaprop.core.kernels.resolve_kernels`; information, not saved in
        checkpoints: a resumed run chooses again, the same way on the same data).
    """

    theta: Array
    optimizer: OptimizerState
    schedule: dict
    seed: int
    rng: dict
    history: History
    last_good: Array
    data_shape: list
    epoch: int = 0
    batch: int = 0
    order: Array | None = None
    loss_sum: float = 0.0
    grad_norm_sq: float = 0.0
    epoch_time: float = 0.0
    callbacks: dict = field(default_factory=dict)
    rank_rngs: list = field(default_factory=list)
    data_digest: str = ""
    settings: dict = field(default_factory=dict)
    kernels: str = ""

    def copy(self) -> "TrainState":
        """A deep copy (a state passed to :func:`train` is copied, never changed).

        Field by field: the history's per-epoch lists of numbers are copied by slicing,
        so that continuing a long run one epoch at a time (``partial_fit``) does not pay
        a recursive deep copy of the whole history at every call.
        """
        new = copy.copy(self)
        new.theta, new.last_good = self.theta.copy(), self.last_good.copy()
        new.order = None if self.order is None else self.order.copy()
        new.optimizer = copy.deepcopy(self.optimizer)
        new.schedule, new.rng, new.callbacks, new.settings, new.rank_rngs = copy.deepcopy(
            (self.schedule, self.rng, self.callbacks, self.settings, self.rank_rngs))
        new.history, new.data_shape = self.history.copy(), list(self.data_shape)
        return new
