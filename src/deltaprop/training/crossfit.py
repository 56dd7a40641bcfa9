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
lower mean log loss in both runs (5 folds and 3), for 15% and 7% more fit time; the mean
accuracy moved within the noise between runs (+0.0013 at 5 folds, -0.0010 at 3).

The members train one after another, each a network of its own, and their weights are
then written side by side into the ensemble (:meth:`Network.stack_members`). The state
returned holds the ensemble's weights, the members' optimizer states side by side, and a
history whose epochs are the means over the members still training then.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..core.network import Network, root_seed
from ..data.blocks import Blocks
from ..data.splits import fold_rows
from ..optim.optimizers import OptimizerState
from .callbacks import History
from .state import TrainState
from .train import train

__all__ = ["CROSS_FIT", "MIN_FOLD", "cross_fits", "mean_history", "train_cross_fit"]

CROSS_FIT = "cross-fit"
"""The ``validation`` of :func:`~deltaprop.fit` that cross-fits an ensemble's members."""

MIN_FOLD = 5
"""The fewest rows a member's fold may hold for the tabular recipe to cross-fit; with fewer,
the members share one held-out share of the rows."""


def cross_fits(members: int, n_samples: int, options: dict) -> bool:
    """Whether the tabular recipe cross-fits an ensemble of ``members`` on ``n_samples`` rows
    with these options of :func:`train`: with at least two members, a fold of at least
    :data:`MIN_FOLD` rows each, and none of the options that need one single run."""
    return members >= 2 and n_samples >= MIN_FOLD * members and _single_run_option(options) is None


def _single_run_option(options: dict) -> str | None:
    """The first option given that a cross-fitted ensemble cannot take, its members being
    separate runs one after another: continuing a state, checkpoints, several processes."""
    for name in ("state", "checkpoint", "resume", "distributed"):
        given = options.get(name)
        if given is not None and not (name == "distributed" and getattr(given, "size", 2) == 1):
            return name
    return None


def train_cross_fit(net: Network, X, T=None, *, sample_weight=None, seed=None, callbacks=(), **options) -> TrainState:
    """Train each member of the ensemble ``net`` on the rows outside its own fold, its
    best epoch chosen on that fold; write their weights into ``net``.

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
        Split with the rows: each member's training and validation rows keep theirs.
    seed : int, optional
        Draws the folds and each member's seed (weights, shuffling, dropout).
    callbacks : sequence of Callback
        Called by each member's run in turn, and ``on_member_begin(m, k)`` before member
        m's run, where a callback has it.
    **options
        Any other argument of :func:`train` but ``validation``; ``early_stopping``
        should be given (else each member trains every epoch and keeps the last).

    Returns
    -------
    TrainState
        The ensemble's: its weights, the members' optimizer states side by side (a run
        continued from it trains the whole ensemble on the rows it is given), and the
        members' mean history.
    """
    k = net.members
    if isinstance(X, Blocks):
        raise ValueError(f"validation: {CROSS_FIT!r} needs rows in memory, not Blocks; give a fraction")
    if k < 2:
        raise ValueError(f"validation: {CROSS_FIT!r} holds out one fold per member of an ensemble; "
                         f"this network has {k} member (give members >= 2, or a validation fraction)")
    name = _single_run_option(options)
    if name is not None:
        raise ValueError(f"{name}: not with validation={CROSS_FIT!r}, whose members train as separate "
                         "runs; give a validation fraction")
    options.pop("distributed", None)
    T = net.encode_targets(T, X.shape[0])  # (one target per row, checked before the folds are cut)
    seeds = np.random.SeedSequence(root_seed(seed)).spawn(k + 1)
    folds = fold_rows(T, k, np.random.default_rng(seeds[0]), stratify=net.task == "classification")
    w = None if sample_weight is None else np.asarray(sample_weight)
    members, states = [], []
    for m, held in enumerate(folds):
        rows = np.setdiff1d(np.arange(T.shape[0]), held, assume_unique=True)
        for cb in callbacks:
            if hasattr(cb, "on_member_begin"):
                cb.on_member_begin(m, k)
        member_seed = int(seeds[m + 1].generate_state(1)[0])
        member = Network(net.sizes, activation=net.activation_names, likelihood=net.likelihood, init=net.init,
                         seed=member_seed, dtype=net.dtype)
        validation = (X[held], T[held]) + (() if w is None else (w[held],))
        states.append(train(member, X[rows], T[rows], sample_weight=None if w is None else w[rows],
                            validation=validation, seed=member_seed, callbacks=callbacks, **options))
        members.append(member)
    net.theta[...] = net.stack_members([member.theta for member in members])
    return _ensemble_state(net, states, root_seed(seed), T.shape[0])


def _ensemble_state(net: Network, states: list[TrainState], seed: int, n_samples: int) -> TrainState:
    """The members' final states as one state of the ensemble."""
    first = states[0]
    optimizer = OptimizerState(
        t=max(s.optimizer.t for s in states), learning_rate=first.optimizer.learning_rate,
        arrays={name: net.stack_members([s.optimizer.arrays[name] for s in states]) for name in first.optimizer.arrays},
        layers=net.layer_slices())
    _, D, K, batch = first.data_shape
    return replace(first, theta=net.stack_members([s.theta for s in states]), optimizer=optimizer, seed=seed,
                   history=mean_history([s.history for s in states]),
                   last_good=net.stack_members([s.last_good for s in states]), data_shape=[n_samples, D, K, batch],
                   epoch=max(s.epoch for s in states), batch=0, order=None, loss_sum=0.0, grad_norm_sq=0.0,
                   epoch_time=0.0, callbacks={}, data_digest="")


def mean_history(histories: list[History]) -> History:
    """The members' histories as one: each epoch's numbers the mean over the members that
    trained it (their time the sum), and a stop reason that gives each member's best epoch."""
    epochs = max(h.epochs for h in histories)

    def mean(series: list[list], total: bool = False) -> list:
        if not any(series):
            return []
        padded = np.full((len(series), epochs) + np.shape(next(s for s in series if s)[0]), np.nan)
        for i, s in enumerate(series):
            padded[i, :len(s)] = s
        return (np.nansum(padded, axis=0) if total else _nanmean(padded)).tolist()

    records = [h.to_dict() for h in histories]
    out = {name: value for name, value in records[0].items() if not isinstance(value, (list, dict))}
    for name, value in records[0].items():  # the per-epoch series
        if isinstance(value, list):
            out[name] = mean([r[name] for r in records], total=name == "time")
    out["layers"] = {q: mean([r["layers"].get(q, []) for r in records]) for q in records[0]["layers"]}
    best = [h.best_epoch or h.epochs for h in histories]
    out.update(stopped=all(h.stopped for h in histories), best_epoch=None, member_best_epochs=best,
               stop_reason=f"cross-fit: {len(histories)} members, each stopped on its own fold (best epochs "
                           f"{', '.join(map(str, best))})")
    return History.from_dict(out)


def _nanmean(a: np.ndarray) -> np.ndarray:
    """The mean over axis 0 of the numbers that are not NaN (NaN where there are none)."""
    count = np.sum(~np.isnan(a), axis=0)
    total = np.nansum(a, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), math.nan)
