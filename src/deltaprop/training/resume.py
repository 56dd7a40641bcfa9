"""Continuing a run: a state or checkpoint checked against the run that takes it up.

A :class:`~deltaprop.training.state.TrainState` (passed as ``state=``, or loaded from a
checkpoint with ``resume=``) continues a run only where it fits: the network's
parameters, the optimizer's state, and, stopped mid-epoch, the same data, batches and
processes. A checkpoint named by ``resume`` must also come from the same data and
settings, so that the resumed run is the run that wrote it, bit for bit.
"""

from __future__ import annotations

import numpy as np

from .state import TrainState


def check_resume(saved: TrainState, resume: str, data_shape: list, digest: str, settings: dict) -> None:
    """A checkpoint continues only the run that wrote it: same data (its shape (N, D, K,
    batch) and fingerprint ``digest``), same settings."""
    if data_shape != saved.data_shape:
        raise ValueError(
            f"resume: checkpoint {resume!r} was written for data of shape (N, D, K, batch) = "
            f"{tuple(saved.data_shape)}, found {tuple(data_shape)}")
    if digest != saved.data_digest:
        raise ValueError(f"resume: checkpoint {resume!r} was written for other training data "
                         "(same shape, different values); resume with the run's own data")
    changed = [f"{k}={saved.settings.get(k)!r} (now {v!r})" for k, v in settings.items()
               if saved.settings.get(k) != v]
    if changed:
        raise ValueError(f"resume: checkpoint {resume!r} was written with other settings: "
                         f"{'; '.join(changed)}; resume with the run's own settings")


def continued_state(state: TrainState, net, optimizer, kernels: str, data_shape: list, source,
                    processes: int) -> TrainState:
    """A copy of ``state`` for a run of ``net`` with ``optimizer`` (its state rebuilt on the
    run's kernel path) on ``source``, checked first: parameters that fit and are finite,
    the optimizer's own state, and for a state stopped mid-epoch the same data shape, row
    order and number of processes (``processes``: 0 for one process alone)."""
    if state.theta.shape != (net.n_params,) or state.theta.dtype != net.dtype:
        raise ValueError(f"state: its parameters ({state.theta.size}, {state.theta.dtype}) do not fit "
                         f"the network ({net.n_params}, {np.dtype(net.dtype).name})")
    if not np.all(np.isfinite(state.theta)):
        raise ValueError("state: its parameters contain NaN or inf")
    fresh = optimizer.init_state(net.theta, net.layer_slices(), kernels)
    if set(fresh.arrays) != set(state.optimizer.arrays):
        raise ValueError(f"state: it holds the state of another optimizer ({sorted(state.optimizer.arrays)}), "
                         f"not of {optimizer!r}")
    if state.batch > 0:  # stopped mid-epoch: only the same epoch can go on
        if state.data_shape != data_shape:
            raise ValueError(
                f"state: it stopped mid-epoch on data of shape (N, D, K, batch) = {tuple(state.data_shape)}, "
                f"found {tuple(data_shape)}")
        if len(state.rank_rngs) != processes:
            raise ValueError(f"state: it stopped mid-epoch in a run of {max(1, len(state.rank_rngs))} "
                             f"process(es), not {max(1, processes)}; continue it with as many")
        try:
            source.check_order(state.order)
        except ValueError as e:
            raise ValueError(f"state: it stopped mid-epoch on other data: {e}") from None
        steps = source.steps(state.order)
        if state.batch >= steps:
            raise ValueError(f"state: batch {state.batch} is beyond the epoch's {steps} batches")
    state = state.copy()
    fresh.load_state_dict(*state.optimizer.state_dict())
    state.optimizer = fresh
    state.data_shape = data_shape
    return state
