"""Checkpoints: a training run's whole state in one safetensors file, for exact resumption.

Tensors: the parameters, the optimizer's state arrays, the epoch's permutation, the
last finite weights and the state arrays of callbacks (early stopping's best weights).
Header: the network's config and, as JSON, the counters (epoch, batch, running sums),
the RNG state at the start and now, the optimizer's scalars, the schedule's and the
callbacks' state, and the history. Written atomically like every file of deltaprop.
"""

from __future__ import annotations

import json

import numpy as np

from .callbacks import History
from .serialization import (CHECKPOINT_FORMAT, FORMAT_VERSION, ModelFileError, _json_safe, network_config,
                            read_safetensors, write_safetensors)


def _stateful(trainer):
    """(key, object) for everything besides the optimizer that carries state."""
    items = [("schedule", trainer.schedule)]
    items += [(f"callback{i}", cb) for i, cb in enumerate(trainer.callbacks) if hasattr(cb, "state_dict")]
    return items


def save_checkpoint(trainer, path: str) -> None:
    """Write everything needed to continue ``trainer`` bit-identically, atomically."""
    opt_scalars, opt_arrays = trainer.optimizer.state_dict()
    tensors = {"theta": trainer.net.theta, "last_good": trainer.last_good, "perm": trainer.perm}
    tensors.update({f"optimizer.{k}": v for k, v in opt_arrays.items()})
    states = {}
    for key, obj in _stateful(trainer):
        st = obj.state_dict()
        if isinstance(st, tuple):
            st, arrays = st
            tensors.update({f"{key}.{k}": v for k, v in arrays.items()})
        states[key] = st
    state = {
        "epoch": trainer.epoch, "batch": trainer.batch, "loss_sum": trainer.loss_sum, "last_g2": trainer.last_g2,
        "epoch_time": trainer.epoch_time, "B": trainer.B, "data_shape": trainer.data_shape,
        "rng": trainer.rng.bit_generator.state, "initial_rng": trainer.initial_rng_state,
        "optimizer": {"name": trainer.optimizer.name, **opt_scalars}, "base_lr": trainer.base_lr,
        "states": states, "history": trainer.history.to_dict(),
    }
    header = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION,
              "config": json.dumps(_json_safe(network_config(trainer.net))),
              "state": json.dumps(_json_safe(state))}
    write_safetensors(path, tensors, header)


def restore_checkpoint(trainer, path: str) -> None:
    """Load a checkpoint into a freshly built ``trainer``, refusing one written for another run."""
    tensors, header = read_safetensors(path, "checkpoint")
    source = f"checkpoint {str(path)!r}"
    if header.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{source} is not a deltaprop checkpoint")
    try:
        config, state = json.loads(header["config"]), json.loads(header["state"])
    except (KeyError, json.JSONDecodeError):
        raise ModelFileError(f"{source}: its header is incomplete or not valid JSON") from None
    net = trainer.net
    mine = {"sizes": net.sizes, "activations": net.activation_names,
            "likelihood": net.likelihood.name, "dtype": np.dtype(net.dtype).name}
    theirs = {k: config.get(k) for k in mine}
    if mine != theirs:
        raise ValueError(f"resume: {source} was written for a different network: {theirs}, not {mine}")
    if state["data_shape"] != trainer.data_shape:
        raise ValueError(
            f"resume: {source} was written for data of shape (N, D, K) = {tuple(state['data_shape'])}, "
            f"found {tuple(trainer.data_shape)}")
    if state["B"] != trainer.B:
        raise ValueError(f"resume: {source} used batch size {state['B']}, found {trainer.B}")
    if state["optimizer"]["name"] != trainer.optimizer.name:
        raise ValueError(f"resume: {source} used optimizer {state['optimizer']['name']!r}, "
                         f"found {trainer.optimizer.name!r}")
    if state["initial_rng"] != trainer.initial_rng_state:
        # the validation split depends on the seed: redo it as the first run did
        raise ValueError(f"resume: {source} was started with another seed; pass the same seed")
    if tensors["theta"].shape != net.theta.shape or tensors["theta"].dtype != net.theta.dtype:
        raise ModelFileError(f"{source}: its parameters do not fit the network")
    np.copyto(net.theta, tensors["theta"])
    np.copyto(trainer.last_good, tensors["last_good"])
    trainer.perm = tensors["perm"].copy()
    opt = dict(state["optimizer"])
    opt.pop("name")
    trainer.optimizer.load_state_dict(opt, {k[len("optimizer."):]: v for k, v in tensors.items()
                                         if k.startswith("optimizer.")})
    trainer.base_lr = state["base_lr"]
    for key, obj in _stateful(trainer):
        if key in state["states"]:
            arrays = {k[len(key) + 1:]: v.copy() for k, v in tensors.items() if k.startswith(key + ".")}
            st = state["states"][key]
            if isinstance(obj.state_dict(), tuple):
                obj.load_state_dict(st, arrays)
            else:
                obj.load_state_dict(st)
    trainer.rng.bit_generator.state = state["rng"]
    trainer.epoch, trainer.batch = state["epoch"], state["batch"]
    trainer.loss_sum, trainer.last_g2, trainer.epoch_time = state["loss_sum"], state["last_g2"], state["epoch_time"]
    trainer.history = History.from_dict(state["history"])
