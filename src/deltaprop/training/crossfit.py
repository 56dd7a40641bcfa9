"""Cross-fitting: an ensemble whose members each hold out a fold of the rows of their own.

With ``validation="cross-fit"`` (:data:`CROSS_FIT`; the tabular recipe's choice for an
ensemble), the training rows are cut into as many disjoint folds as the ensemble has
members, stratified by class. Member m trains on every fold but fold m, and early
stopping keeps the weights of its epoch with the lowest loss on fold m. So every row
trains all members but one, and each member's epoch is chosen on rows it never saw;
with one held-out split shared by all members, a tenth of the rows trains no member,
and every member's epoch is chosen on the same few rows. The prediction is the members'
mean, as for any ensemble.

On the development suite of real tables, four cross-fitted members against four sharing a
held-out tenth (``benchmarks/README.md``, the recipe's ablation): a higher mean R^2 and a
lower mean log loss in every run; the mean accuracy moved within the noise between runs.
Trained together (below), they take about 1.4 times the fit time of four members sharing a
tenth: each member also computes the rows of its own fold, weighted 0, and the run goes on
until the last member has stopped.

The members train together, in one run of the ensemble: one product per layer for all of
them, not a run per member. Each batch is shared, and each member has a column of sample
weights of its own (:func:`~deltaprop.core.engine.output_delta`) that is 0 on its fold: so
member m's gradient is its mean over the batch's rows outside fold m, and a row of its fold
never trains it. After every epoch, :class:`FoldStopping` scores each member on its own
fold, keeps each member's weights of its best epoch, stops the run when every member has
waited ``patience`` epochs, and writes back each member's best weights at the end.
The history's validation loss is the members' mean loss on their folds, and its metric
that of the out-of-fold predictions (each row predicted by the one member that never
trained on it).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..core.network import Network, root_seed
from ..data.blocks import Blocks
from ..data.splits import fold_rows
from ..metrics import score_outputs
from ..validation import check_float, check_int, check_weights
from .callbacks import Callback, EarlyStopping
from .checkpoints import load_checkpoint
from .state import TrainState
from .train import train

__all__ = ["CROSS_FIT", "MIN_FOLD", "FoldStopping", "cross_fits", "train_cross_fit"]

CROSS_FIT = "cross-fit"
"""The ``validation`` of :func:`~deltaprop.fit` that cross-fits an ensemble's members."""

MIN_FOLD = 5
"""The fewest rows a member's fold may hold for the tabular recipe to cross-fit; with fewer,
the members share one held-out share of the rows."""


def cross_fits(members: int, n_samples: int, options: dict) -> bool:
    """Whether the tabular recipe cross-fits an ensemble of ``members`` on ``n_samples`` rows
    with these options of :func:`train`: with at least two members, a fold of at least
    :data:`MIN_FOLD` rows each, and none of the options that need one single run."""
    return members >= 2 and n_samples >= MIN_FOLD * members and _refused_option(options) is None


def _refused_option(options: dict) -> str | None:
    """The option given that a cross-fitted ensemble does not take: several processes (the
    members' weights would be summed over the ranks before they are divided by each member's
    own total)."""
    given = options.get("distributed")
    return "distributed" if given is not None and getattr(given, "size", 2) != 1 else None


def train_cross_fit(net: Network, X, T=None, *, sample_weight=None, seed=None, callbacks=(),
                    early_stopping: int | EarlyStopping | None = None, **options) -> TrainState:
    """Train the members of the ensemble ``net`` together, each on the rows outside its own
    fold, each member's best epoch chosen on its fold; ``net`` ends with those weights.

    Parameters
    ----------
    net : Network
        An ensemble (``members >= 2``): one fold per member.
    X : array of shape (n_samples, D_0)
        The rows, as the network takes them (in memory: not Blocks).
    T : array-like
        Targets for the network's likelihood, as :func:`train` takes them (folds are
        stratified by class for a classifier).
    sample_weight : array of shape (n_samples,), optional
        Each row keeps its weight, in training and on its fold.
    seed : int, optional
        Seeds the run (shuffling, dropout) and draws the folds from it. Continuing a
        ``state`` or a checkpoint (``resume``), None means the run's own: the same folds.
    callbacks : sequence of Callback
        Called by the run after :class:`FoldStopping`, which has written the epoch's
        validation loss and metric into the history.
    early_stopping : int or EarlyStopping, optional
        Each member's patience (and ``min_delta``) on its fold. None: every member trains
        every epoch and keeps its best one.
    **options
        Any other argument of :func:`train` but ``validation``: ``state``,
        ``checkpoint`` and ``resume`` too (the members' early stopping is saved with the run).

    Returns
    -------
    TrainState
        The run's: the ensemble's weights, its optimizer state (a run continued from it
        trains the whole ensemble on the rows it is given), and its history, with each
        member's best epoch in ``member_best_epochs``.
    """
    k = net.members
    if isinstance(X, Blocks):
        raise ValueError(f"validation: {CROSS_FIT!r} needs rows in memory, not Blocks; give a fraction")
    if k < 2:
        raise ValueError(f"validation: {CROSS_FIT!r} holds out one fold per member of an ensemble; "
                         f"this network has {k} member (give members >= 2, or a validation fraction)")
    name = _refused_option(options)
    if name is not None:
        raise ValueError(f"{name}: not with validation={CROSS_FIT!r} (each member's weights are its own "
                         "mean over its rows); give a validation fraction")
    options.pop("distributed", None)
    root = _run_seed(net, seed, options)
    X = net.check_X(X, convert=False)
    T = net.encode_targets(T, X.shape[0])  # (one target per row, checked before the folds are cut)
    n = T.shape[0]
    w = np.ones(n) if sample_weight is None else check_weights(sample_weight, n).astype(np.float64)
    fold = np.empty(n, dtype=np.intp)
    for m, rows in enumerate(fold_rows(T, k, folds_rng(root), stratify=net.task == "classification")):
        fold[rows] = m
    # member m's column: each row's weight, but 0 on fold m
    weights = w[:, None] * (fold[:, None] != np.arange(k))
    stopping = FoldStopping(X, T, fold, None if sample_weight is None else w, early_stopping)
    return train(net, X, T, sample_weight=weights, seed=root, callbacks=[stopping, *callbacks], **options)


def folds_rng(seed: int) -> np.random.Generator:
    """The generator that draws the folds of a cross-fitted run of root seed ``seed``: its own
    stream, apart from those the run draws from the same seed (shuffling, dropout)."""
    return np.random.default_rng([seed, _FOLDS_STREAM])


_FOLDS_STREAM = 0xF01D5


def _run_seed(net: Network, seed, options: dict) -> int:
    """The run's root seed: ``seed``'s, or where none is given and a run is continued (a state,
    or a checkpoint that exists), that run's, so that the folds are drawn again the same."""
    if seed is None:
        state, resume = options.get("state"), options.get("resume")
        if state is None and resume is not None and os.path.exists(resume):
            state = load_checkpoint(resume, net)
        if state is not None:
            return state.seed
    return root_seed(seed)


class FoldStopping(Callback):
    """Early stopping for the members of a cross-fitted ensemble, each on its own fold.

    After every epoch it scores each member on the rows of its fold (the data term of J,
    the mean -log p(y|x), weighted when there are weights), writes their mean into the
    history's validation loss and the metric of the out-of-fold predictions into its
    validation metric, and keeps each member's weights of its best epoch. A member that
    has not improved by ``min_delta`` for ``patience`` epochs is done: its best epoch is
    final (it trains on with the others, and its best weights come back at the end). The
    run stops when every member is done.

    Parameters
    ----------
    X : array of shape (n_samples, D_0)
        The training rows, checked.
    T : array of shape (n_samples, D_L)
        Their encoded targets.
    fold : array of shape (n_samples,)
        Each row's fold: the member that never trains on it.
    sample_weight : array of shape (n_samples,), optional
    early_stopping : int or EarlyStopping, optional
        The patience (and ``min_delta``, ``restore_best``); None: no stopping, each
        member's best epoch restored.
    """

    def __init__(self, X, T, fold, sample_weight=None, early_stopping: int | EarlyStopping | None = None):
        self.X, self.T, self.fold = X, T, np.asarray(fold, dtype=np.intp)
        self.w = np.ones(len(self.fold)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        self.weighted = sample_weight is not None
        self.restore_best = True
        if isinstance(early_stopping, EarlyStopping):
            self.patience, self.min_delta = early_stopping.patience, early_stopping.min_delta
            self.restore_best = early_stopping.restore_best
        else:
            self.patience = math.inf if early_stopping is None else check_int("early_stopping", early_stopping, 1)
            self.min_delta = 0.0
        self.min_delta = check_float("min_delta", self.min_delta, 0.0)
        self.stop_reason = ""

    def on_train_begin(self, net, state):
        k = net.members
        self.best, self.wait = np.full(k, math.inf), np.zeros(k, dtype=np.int64)
        self.best_epoch = np.full(k, -1, dtype=np.int64)
        self.best_theta = np.array(net.backend.to_host(net.theta))
        self.positions = net.member_positions()
        self.owner = np.empty(net.n_params, dtype=np.int64)  # which member each entry of theta belongs to
        self.owner[self.positions] = np.arange(k)[:, None]
        # a member is scored alone, on its fold alone: a network of its own, its weights copied in
        self.member = Network(net.sizes, activation=net.activation_names, likelihood=net.likelihood,
                              dtype=net.dtype, seed=0)  # (its own weights are never used)
        self.rows = [np.flatnonzero(self.fold == m) for m in range(k)]
        self.parts = [(net.check_X(self.X[r]), self.T[r], self.w[r] if self.weighted else None)
                      for r in self.rows]  # (dense or sparse, in the network's dtype)
        self.stop_reason = ""

    def fold_scores(self, net) -> tuple[np.ndarray, float]:
        """Each member's loss on its own fold, and the metric of the out-of-fold predictions."""
        theta = net.backend.to_host(net.theta)
        losses, o = np.empty(net.members), np.empty(self.T.shape, net.dtype)
        for m, (rows, (X, T, w)) in enumerate(zip(self.rows, self.parts)):
            np.take(theta, self.positions[m], out=self.member.theta)
            losses[m], o[rows] = self.member.loss_and_outputs(X, T, w)
        return losses, score_outputs(net.likelihood, o, self.T, self.w if self.weighted else None)

    def on_epoch_end(self, epoch, history, net):
        losses, metric = self.fold_scores(net)
        history.val_loss[-1], history.val_metric[-1] = float(np.mean(losses)), metric
        going = self.wait < self.patience
        better = going & (losses < self.best - self.min_delta)
        self.best[better], self.best_epoch[better], self.wait[better] = losses[better], epoch, 0
        self.wait[going & ~better] += 1
        if better.any():
            np.copyto(self.best_theta, net.backend.to_host(net.theta), where=better[self.owner])
        if np.all(self.wait >= self.patience):
            self.stop_reason = f"no validation loss improvement on its own fold for {self.patience} epochs"
            return True
        return False

    def state_dict(self):
        """Each member's best loss, best epoch (-1: none yet) and epochs waited (``best_m``,
        ``best_epoch_m``, ``wait_m``), and the best weights: what a checkpoint keeps, so that a
        resumed run stops each member as this one would."""
        scalars = {"members": len(self.best)}
        for m in range(len(self.best)):
            scalars.update({f"best_{m}": float(self.best[m]), f"best_epoch_{m}": int(self.best_epoch[m]),
                            f"wait_{m}": int(self.wait[m])})
        return scalars, {"best_theta": self.best_theta}

    def load_state_dict(self, scalars, arrays):
        k = len(self.best)
        try:
            ok = scalars["members"] == k and arrays["best_theta"].shape == self.best_theta.shape
            best = [scalars[f"best_{m}"] for m in range(k)]
            best_epoch, wait = ([scalars[f"{name}_{m}"] for m in range(k)] for name in ("best_epoch", "wait"))
        except (KeyError, TypeError, AttributeError):
            ok = False
        ok = ok and all(isinstance(v, (int, float)) and not math.isnan(v) for v in best) \
            and all(type(e) is int and e >= -1 for e in best_epoch) and all(type(w) is int and w >= 0 for w in wait)
        if not ok:
            raise ValueError(f"cross-fit: malformed state of its early stopping for {k} members: {scalars!r}")
        self.best = np.array(best, dtype=np.float64)
        self.best_epoch, self.wait = np.array(best_epoch, dtype=np.int64), np.array(wait, dtype=np.int64)
        np.copyto(self.best_theta, arrays["best_theta"])

    def on_train_end(self, net, history):
        # each member's best weights; its last where no epoch ever improved, or without restore_best
        kept = (self.best_epoch >= 0) & self.restore_best
        if kept.any():
            theta = np.array(net.backend.to_host(net.theta))
            np.copyto(theta, self.best_theta, where=kept[self.owner])
            net.backend.upload(net.theta, theta)
        best = history.member_best_epochs = [int(e) + 1 if ok else history.epochs
                                             for e, ok in zip(self.best_epoch, kept)]
        history.best_epoch = None
        if not history.stop_reason.startswith("cross-fit"):  # (a run ended again: said once)
            history.stop_reason = (f"cross-fit: {net.members} members, each on its own fold: {history.stop_reason} "
                                   f"(best epochs {', '.join(map(str, best))})")
