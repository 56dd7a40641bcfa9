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
import math

import numpy as np

from ..core.backend import backend_of
from ..io.files import CHECKSUM_KEY, ModelFileError, atomic_safetensors, json_safe, read_safetensors
from ..optim.optimizers import OptimizerState
from .callbacks import History
from .state import TrainState

CHECKPOINT_FORMAT = "deltaprop-checkpoint"
CHECKPOINT_VERSION = "3"  # 3: checksum, run settings and data fingerprint


def save_checkpoint(path, net, state: TrainState, optimizer) -> None:
    """Write ``state`` (of a run of ``net`` with ``optimizer``) to ``path``, atomically."""
    opt_scalars, opt_arrays = state.optimizer.state_dict()
    tensors = {"theta": state.theta, "last_good": state.last_good}
    if state.order is not None:
        tensors["order"] = state.order
    tensors.update({f"optimizer.{k}": backend_of(v).to_host(v) for k, v in opt_arrays.items()})
    callbacks = {}
    for key, (scalars, arrays) in state.callbacks.items():
        callbacks[key] = scalars
        tensors.update({f"callback.{key}.{k}": v for k, v in arrays.items()})
    header = {
        "epoch": state.epoch, "batch": state.batch, "loss_sum": state.loss_sum,
        "grad_norm_sq": state.grad_norm_sq, "epoch_time": state.epoch_time, "data_shape": state.data_shape,
        "data_digest": state.data_digest, "settings": state.settings,
        "seed": state.seed, "rng": state.rng, "rank_rngs": state.rank_rngs, "schedule": state.schedule,
        "history": state.history.to_dict(),
        "optimizer": {"name": optimizer.name, **opt_scalars}, "callbacks": callbacks,
    }
    atomic_safetensors(path, tensors, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                                       "config": json.dumps(json_safe(net.config())),
                                       "state": json.dumps(json_safe(header))})


def load_checkpoint(path, net=None) -> TrainState:
    """Read a checkpoint as a :class:`TrainState`, to pass to :func:`deltaprop.train`.

    Every field is validated as strictly as a model file's: the checksum, then the
    types, ranges and shapes of every number and array (finite weights, a row order
    that is a permutation, a generator state that NumPy accepts).
    With ``net``, the checkpoint must have been written for the same architecture.

    Raises
    ------
    ModelFileError
        If the file is missing, malformed, damaged or not a deltaprop checkpoint.
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
    if CHECKSUM_KEY not in header:
        raise ModelFileError(f"{source} is corrupted: its checksum is missing")
    try:
        config, st = json.loads(header["config"]), json.loads(header["state"])
        state = _state_from(config, st, tensors, net)
    except _Invalid as e:
        raise ModelFileError(f"{source}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise ModelFileError(f"{source}: its header is incomplete or malformed ({type(e).__name__}: {e})") from None
    return state


class _Invalid(Exception):
    pass


def _field(d: dict, key: str, kind, ok=lambda v: True, what: str = ""):
    """``d[key]`` if it is of ``kind`` and passes ``ok``, else _Invalid naming it."""
    v = d.get(key) if isinstance(d, dict) else None
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool or not ok(v):
        raise _Invalid(f"field {key!r} is {str(v)[:60]!r}; expected {what or kind.__name__}")
    return v


def _array(tensors: dict, key: str, like: np.ndarray | None = None) -> np.ndarray:
    a = tensors[key]
    if like is not None and (a.shape != like.shape or a.dtype != like.dtype):
        raise _Invalid(f"tensor {key!r} has shape {a.shape} and dtype {a.dtype}; expected {like.shape}, {like.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise _Invalid(f"tensor {key!r} contains NaN or inf")
    return a.copy()


def _state_from(config: dict, st: dict, tensors: dict, net) -> TrainState:
    if net is not None:
        mine = net.config()
        theirs = {k: config.get(k) for k in ("sizes", "activations", "likelihood", "dtype", "members")}
        if {k: mine.get(k) for k in theirs} != theirs:
            raise ValueError(f"resume: the checkpoint was written for a different network: {theirs}, "
                             f"not {({k: mine.get(k) for k in theirs})}")
    if "theta" not in tensors or "last_good" not in tensors:
        raise _Invalid("tensors 'theta' and 'last_good' are missing")
    theta = tensors["theta"]
    if theta.ndim != 1 or theta.dtype.kind != "f" or (net is not None and
                                                      (theta.shape != (net.n_params,) or theta.dtype != net.dtype)):
        raise _Invalid(f"its parameters (shape {theta.shape}, {theta.dtype}) do not fit the network")
    theta = _array(tensors, "theta", theta)
    last_good = _array(tensors, "last_good", theta)
    nonneg = (lambda v: v >= 0, "an integer >= 0")
    data_shape = _field(st, "data_shape", list, lambda v: len(v) == 4 and all(
        type(n) is int and n >= 1 for n in v), "(n_samples, n_features, n_outputs, batch_size)")
    n, batch_size = data_shape[0], data_shape[3]
    epoch = _field(st, "epoch", int, *nonneg)
    batch = _field(st, "batch", int, *nonneg)
    order = None
    if "order" in tensors:
        order = tensors["order"]
        # rows (arrays), or a shuffle seed and the blocks (block sources): the run checks which
        rows = order.shape == (n,) and np.array_equal(np.sort(order), np.arange(n))
        blocks = order.ndim == 1 and len(order) > 1 and order[0] >= -1 and np.array_equal(
            np.sort(order[1:]), np.arange(len(order) - 1))
        if order.dtype != np.int64 or not (rows or blocks):
            raise _Invalid(f"tensor 'order' is not a permutation of the {n} training rows or of blocks")
        if rows and batch >= -(-n // batch_size):
            raise _Invalid(f"field 'batch' is {batch}, beyond the {-(-n // batch_size)} batches of an epoch")
        order = order.copy()
    elif batch > 0:
        raise _Invalid("it stopped mid-epoch but holds no row order")
    opt = _field(st, "optimizer", dict)
    _field(opt, "name", str)
    opt_state = OptimizerState(
        _field(opt, "t", int, *nonneg),
        _field(opt, "learning_rate", float, lambda v: math.isfinite(v) and v > 0, "a positive number"),
        {k[len("optimizer."):]: _array(tensors, k, theta) for k in tensors if k.startswith("optimizer.")}, [])
    callbacks = {}
    for key, scalars in _field(st, "callbacks", dict).items():
        if not isinstance(scalars, dict) or not all(isinstance(v, (int, float, str, type(None)))
                                                    for v in scalars.values()):
            raise _Invalid(f"the state of callback {key!r} is malformed")
        prefix = f"callback.{key}."
        callbacks[key] = (scalars, {k[len(prefix):]: _array(tensors, k, theta) for k in tensors
                                    if k.startswith(prefix)})
    known = {"theta", "last_good", "order"}
    unknown = [k for k in tensors if k not in known and not k.startswith(("optimizer.", "callback."))]
    if unknown:
        raise _Invalid(f"unknown tensors {sorted(unknown)}")
    rng = _field(st, "rng", dict)
    rank_rngs = st.get("rank_rngs", [])
    if not isinstance(rank_rngs, list):
        raise _Invalid("'rank_rngs' is not a list")
    for state in [rng, *rank_rngs]:
        try:
            np.random.PCG64().state = state  # NumPy validates a generator state when it is set
        except (TypeError, ValueError, KeyError, OverflowError):
            raise _Invalid("its random generator state is malformed") from None
    schedule = _field(st, "schedule", dict)
    if not all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
               for k, v in schedule.items()):
        raise _Invalid("its schedule state is malformed")
    history = History.from_dict(_field(st, "history", dict))
    if history.epochs != epoch:
        raise _Invalid(f"its history has {history.epochs} epochs, its counter {epoch}")
    return TrainState(
        theta=theta, last_good=last_good, optimizer=opt_state, schedule=schedule,
        seed=_field(st, "seed", int), rng=rng, rank_rngs=rank_rngs, history=history, data_shape=data_shape,
        data_digest=_field(st, "data_digest", str), settings=_field(st, "settings", dict),
        epoch=epoch, batch=batch, order=order,
        loss_sum=_field(st, "loss_sum", float, math.isfinite, "a finite number"),
        grad_norm_sq=_field(st, "grad_norm_sq", float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
        epoch_time=_field(st, "epoch_time", float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
        callbacks=callbacks)
