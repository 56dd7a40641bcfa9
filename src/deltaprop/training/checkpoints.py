"""Checkpoints: a :class:`~deltaprop.training.state.TrainState` in one safetensors file.

Tensors: the iterate ``theta``, the last finite weights, the epoch's row order, the
optimizer's state arrays and the callbacks' state arrays (early stopping's best
weights). Header: the network's config and, as JSON, the counters, the RNG state,
the optimizer's name and scalars, the schedule's and the callbacks' state, and the
history. Written atomically like every file of deltaprop; read back with every
field validated, never with pickle.
"""

from __future__ import annotations

import json

import numpy as np

from ..io.files import ModelFileError, atomic_safetensors, json_safe, read_safetensors
from ..optim.optimizers import OptimizerState
from .callbacks import History
from .state import TrainState

CHECKPOINT_FORMAT = "deltaprop-checkpoint"
CHECKPOINT_VERSION = "2"


def save_checkpoint(path, net, state: TrainState, optimizer) -> None:
    """Write ``state`` (of a run of ``net`` with ``optimizer``) to ``path``, atomically."""
    opt_scalars, opt_arrays = state.optimizer.state_dict()
    tensors = {"theta": state.theta, "last_good": state.last_good}
    if state.order is not None:
        tensors["order"] = state.order
    tensors.update({f"optimizer.{k}": v for k, v in opt_arrays.items()})
    callbacks = {}
    for key, (scalars, arrays) in state.callbacks.items():
        callbacks[key] = scalars
        tensors.update({f"callback.{key}.{k}": v for k, v in arrays.items()})
    header = {
        "epoch": state.epoch, "batch": state.batch, "loss_sum": state.loss_sum,
        "grad_norm_sq": state.grad_norm_sq, "epoch_time": state.epoch_time, "data_shape": state.data_shape,
        "seed": state.seed, "rng": state.rng, "schedule": state.schedule, "history": state.history.to_dict(),
        "optimizer": {"name": optimizer.name, **opt_scalars}, "callbacks": callbacks,
    }
    atomic_safetensors(path, tensors, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                                       "config": json.dumps(json_safe(net.config())),
                                       "state": json.dumps(json_safe(header))})


def load_checkpoint(path, net=None) -> TrainState:
    """Read a checkpoint as a :class:`TrainState`, to pass to :func:`deltaprop.train`.

    With ``net``, the checkpoint must have been written for the same architecture.

    Raises
    ------
    ModelFileError
        If the file is missing, malformed or not a deltaprop checkpoint.
    ValueError
        If it was written for another network.
    """
    tensors, header = read_safetensors(path, "checkpoint")
    source = f"checkpoint {str(path)!r}"
    if header.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{source} is not a deltaprop checkpoint")
    if header.get("format_version") != CHECKPOINT_VERSION:
        raise ModelFileError(f"{source} has format version {header.get('format_version')!r}; this deltaprop "
                             f"reads version {CHECKPOINT_VERSION} (start the run again)")
    try:
        config, st = json.loads(header["config"]), json.loads(header["state"])
        if net is not None:
            mine = net.config()
            theirs = {k: config.get(k) for k in ("sizes", "activations", "likelihood", "dtype")}
            if {k: mine[k] for k in theirs} != theirs:
                raise ValueError(f"resume: {source} was written for a different network: {theirs}, "
                                 f"not {({k: mine[k] for k in theirs})}")
        opt = dict(st["optimizer"])
        opt_arrays = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
        callbacks = {}
        for key, scalars in st["callbacks"].items():
            prefix = f"callback.{key}."
            callbacks[key] = (scalars, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        theta = tensors["theta"]
        if net is not None and (theta.shape != net.theta.shape or theta.dtype != net.theta.dtype):
            raise ModelFileError(f"{source}: its parameters do not fit the network")
        if not np.all(np.isfinite(theta)):
            raise ModelFileError(f"{source}: its parameters contain NaN or inf")
        return TrainState(
            theta=theta.copy(), last_good=tensors["last_good"].copy(),
            optimizer=OptimizerState(int(opt["t"]), float(opt["learning_rate"]),
                                     {k: v.copy() for k, v in opt_arrays.items()}, []),
            schedule=st["schedule"], seed=int(st["seed"]), rng=st["rng"], history=History.from_dict(st["history"]),
            data_shape=list(st["data_shape"]), epoch=int(st["epoch"]), batch=int(st["batch"]),
            order=tensors["order"].copy() if "order" in tensors else None, loss_sum=float(st["loss_sum"]),
            grad_norm_sq=float(st["grad_norm_sq"]), epoch_time=float(st["epoch_time"]), callbacks=callbacks)
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{source}: its header is incomplete or malformed ({e})") from None
