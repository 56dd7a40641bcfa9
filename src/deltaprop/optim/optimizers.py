"""Optimizers: eq. (10), ``theta <- theta - mu grad J``, and the refinements that make it work.

An optimizer object holds **settings** only (its learning rate and constants) and
is never changed by training. What changes from step to step (the step count,
the moments, the learning rate a schedule set for this epoch) lives in an
:class:`OptimizerState` made by :meth:`Optimizer.init_state`, preallocated like
``theta``, so a step allocates nothing, and saved in checkpoints through
:meth:`OptimizerState.state_dict`. The optimizers are sorted by complexity; state
starts at zero, so the first step needs no special case.

Every rule is elementwise, so a step can be taken layer by layer (one slice of theta per
layer): :meth:`~deltaprop.core.objective.Objective.value_and_step` updates layer l
as soon as backpropagation is done with it. The gradient may arrive scaled by
``prescale(state)``: plain SGD asks for ``-mu grad J``, which the backward pass
delivers for the price of scaling ``delta[L]``, and its update is one addition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.backend import backend_of, namespace
from ..core.kernels import update_kernel
from ..registry import lookup
from ..validation import check_float

Array = np.ndarray


@dataclass
class OptimizerState:
    """What an optimizer changes as it runs: step count, learning rate, state arrays.

    Attributes
    ----------
    t : int
        Steps taken.
    learning_rate : float
        The mu of the current epoch (the optimizer's, or what a schedule set).
    arrays : dict of str to ndarray
        The optimizer's state vectors, shaped like ``theta`` (e.g. Adam's ``m``, ``v``).
    layers : list of (slice, int)
        The layers of ``theta``: ``(slice, n_weights)``, weights first, then the bias row.
    fused_update : callable or None
        The optimizer's fused update (a Numba kernel of the ``"numba"`` path), or None for
        the NumPy reference; how the state is updated, not part of it (checkpoints do not
        save it).
    """

    t: int
    learning_rate: float
    arrays: dict
    layers: list
    work: Array | None = field(default=None, repr=False)
    fused_update: object = field(default=None, repr=False)

    def state_dict(self) -> tuple[dict, dict]:
        """(scalars, arrays): everything needed to continue bit-identically."""
        return {"t": self.t, "learning_rate": self.learning_rate}, dict(self.arrays)

    def __getstate__(self) -> dict:
        # what a serializer keeps (pickle, skops): the numbers; the layers, the work buffer
        # and the compiled kernel are the run's, rebuilt when a run continues from it
        return {"t": self.t, "learning_rate": self.learning_rate, "arrays": self.arrays}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["t"], state["learning_rate"], dict(state["arrays"]), [])

    def __deepcopy__(self, memo) -> "OptimizerState":
        # the fused update is shared, not copied (a compiled function is no state)
        def copy(a):
            return namespace(a).copy(a)
        return OptimizerState(self.t, self.learning_rate, {k: copy(v) for k, v in self.arrays.items()},
                              list(self.layers), None if self.work is None else copy(self.work), self.fused_update)

    def load_state_dict(self, scalars: dict, arrays: dict) -> None:
        """Restore what :meth:`state_dict` returned into this (same-shaped) state."""
        missing = set(self.arrays) - set(arrays)
        if missing:
            raise ValueError(f"optimizer state: missing arrays {sorted(missing)}")
        self.t, self.learning_rate = int(scalars["t"]), float(scalars["learning_rate"])
        for k, v in self.arrays.items():
            if np.shape(arrays[k]) != v.shape:
                raise ValueError(f"optimizer state: {k} has shape {np.shape(arrays[k])}, expected {v.shape}")
            if isinstance(v, np.ndarray):
                np.copyto(v, arrays[k])
            else:  # (a state on another backend, from host arrays)
                backend_of(v).upload(v, arrays[k])


class Optimizer:
    """Base class: settings (a learning rate and constants); state lives in :class:`OptimizerState`.

    Subclasses name their state arrays in ``_state`` and implement ``_update`` on
    one layer of parameters.
    """

    name = ""
    _state: tuple[str, ...] = ()
    _uses_work = False
    flush_every = 32  # steps between flushes of subnormal state values to zero

    def __init__(self, learning_rate: float):
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, strict=True)

    def init_state(self, theta: Array, layers: list[tuple[slice, int]] | None = None,
                   kernels: str | None = None) -> OptimizerState:
        """A fresh state (zeros) for parameters shaped like ``theta``.

        ``layers`` splits ``theta`` (:meth:`Network.layer_slices`): ``(slice, n_weights)``
        per layer, the first ``n_weights`` entries of a layer being weights and the rest biases (the
        augmented W[l] of eq. (11), flattened). Decoupled weight decay (AdamW) acts on
        weights only. By default the whole of theta is one layer of weights.
        ``kernels`` chooses the update's path (:mod:`deltaprop.core.kernels`): with
        ``"numba"``, one fused pass per layer.
        """
        xp = namespace(theta)
        arrays = {name: xp.zeros_like(theta) for name in self._state}
        # a fused kernel stands for a registered optimizer, not for a subclass of one
        fused = (update_kernel(self.name, kernels, backend_of(theta))
                 if self._state and OPTIMIZERS.get(self.name) is type(self) else None)
        return OptimizerState(0, self.learning_rate, arrays,
                              list(layers) if layers else [(slice(0, theta.shape[0]), theta.shape[0])],
                              xp.empty_like(theta) if self._uses_work and fused is None else None, fused)

    def prescale(self, state: OptimizerState) -> float:
        """The factor the gradient may arrive multiplied by (see the module docstring)."""
        return 1.0

    def begin_step(self, state: OptimizerState) -> None:
        """Count a step (before its layers are updated)."""
        state.t += 1

    def update_layer(self, theta: Array, grad: Array, state: OptimizerState, k: int, scale: float = 1.0) -> None:
        """Update layer k (0-based) of ``theta`` in place from ``grad`` = ``scale`` x the gradient
        (which it may overwrite)."""
        sl, n_weights = state.layers[k]
        g = grad[sl]
        if scale != 1.0:
            g *= 1.0 / scale
        if state.fused_update is not None:  # the same update in one pass, the flush folded in
            dt = theta.dtype.type
            state.fused_update(theta[sl], g, *(a[sl] for a in state.arrays.values()),
                         *self._fused_args(state.learning_rate, state.t, n_weights, dt),
                         state.t % self.flush_every == 0, dt(np.finfo(theta.dtype).tiny))
            return
        arrays = {name: a[sl] for name, a in state.arrays.items()}
        work = None if state.work is None else state.work[sl]
        self._update(theta[sl], g, state.learning_rate, state.t, arrays, work, n_weights)
        if arrays and state.t % self.flush_every == 0:
            for a in arrays.values():
                _flush_subnormals(a, work)

    def step(self, theta: Array, grad: Array, state: OptimizerState) -> None:
        """One update of ``theta`` in place; ``grad`` may be overwritten."""
        self.begin_step(state)
        for k in range(len(state.layers)):
            self.update_layer(theta, grad, state, k)

    def _update(self, theta, grad, lr, t, arrays, work, n_weights):
        raise NotImplementedError

    def _fused_args(self, lr, t, n_weights, dt) -> tuple:
        """The constants of this step for the fused kernel (:mod:`deltaprop.core.fused`), in
        the parameters' dtype ``dt``, as ``_update`` rounds them."""
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        """The constructor arguments (for checkpoints and repr)."""
        return dict(vars(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _flush_subnormals(a: Array, work: Array) -> None:
    """Set subnormal entries of ``a`` to zero, in place.

    State that decays geometrically where the gradient is exactly zero (a dead
    unit, a pixel that is always 0) sinks into the subnormal range, where every
    arithmetic operation is tens of times slower: a run of Adam on MNIST was seen
    to slow down epoch after epoch. A flush every few steps keeps it out, at the
    cost of three passes every ``flush_every`` steps.
    """
    xp = namespace(a)
    xp.abs(a, out=work)
    xp.greater_equal(work, float(xp.finfo(a.dtype).smallest_normal), out=work)
    a *= work


class SGD(Optimizer):
    """Plain gradient descent, eq. (10): theta <- theta - mu g.

    In training, the backward pass delivers ``-mu g`` directly (the factor costs
    nothing there, see ``Network.backward_pass``), and the update is one addition.
    """

    name = "sgd"

    def __init__(self, learning_rate: float = 0.1):
        super().__init__(learning_rate)

    def prescale(self, state):
        # below 1e-12, -mu grad J could underflow (and mu^2, which recovers ||grad J||, does)
        return -state.learning_rate if state.learning_rate >= 1e-12 else 1.0

    def update_layer(self, theta, grad, state, k, scale=1.0):
        sl = state.layers[k][0]
        g = grad[sl]
        if scale != -state.learning_rate:
            g *= -state.learning_rate / scale
        theta[sl] += g  # theta <- theta + (-mu grad J)


class Momentum(Optimizer):
    """Heavy-ball momentum: v <- beta v - mu g;  theta <- theta + v."""

    name = "momentum"
    _state = ("velocity",)
    _uses_work = True

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9):
        super().__init__(learning_rate)
        self.momentum = check_float("momentum", momentum, 0.0, below=1.0)

    def _update(self, theta, grad, lr, t, arrays, work, n_weights):
        v = arrays["velocity"]
        v *= self.momentum
        grad *= lr
        v -= grad
        theta += v

    def _fused_args(self, lr, t, n_weights, dt):
        return dt(lr), dt(self.momentum)


class Nesterov(Momentum):
    """Nesterov momentum (Sutskever's form): v <- beta v - mu g;  theta <- theta + beta v - mu g."""

    name = "nesterov"

    def _update(self, theta, grad, lr, t, arrays, work, n_weights):
        v = arrays["velocity"]
        v *= self.momentum
        grad *= lr
        v -= grad
        theta -= grad
        namespace(v).multiply(v, self.momentum, out=grad)
        theta += grad


class AdaGrad(Optimizer):
    """AdaGrad: s <- s + g^2;  theta <- theta - mu g / (sqrt(s) + eps)."""

    name = "adagrad"
    _state = ("sum_sq",)
    _uses_work = True

    def __init__(self, learning_rate: float = 0.01, eps: float = 1e-8):
        super().__init__(learning_rate)
        self.eps = check_float("eps", eps, 0.0, strict=True)

    def _accumulate(self, grad, s, work):
        namespace(grad).multiply(grad, grad, out=work)
        s += work

    def _update(self, theta, grad, lr, t, arrays, work, n_weights):
        s = arrays["sum_sq"]
        self._accumulate(grad, s, work)
        namespace(s).sqrt(s, out=work)
        work += self.eps
        grad /= work
        grad *= lr
        theta -= grad

    def _fused_args(self, lr, t, n_weights, dt):
        return dt(lr), dt(self.eps), dt(1), dt(1)  # s <- 1 s + 1 g^2


class RMSProp(AdaGrad):
    """RMSProp: s <- rho s + (1 - rho) g^2;  theta <- theta - mu g / (sqrt(s) + eps)."""

    name = "rmsprop"

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(learning_rate, eps)
        self.rho = check_float("rho", rho, 0.0, below=1.0)

    def _accumulate(self, grad, s, work):
        namespace(grad).multiply(grad, grad, out=work)
        work *= 1 - self.rho
        s *= self.rho
        s += work

    def _fused_args(self, lr, t, n_weights, dt):
        return dt(lr), dt(self.eps), dt(self.rho), dt(1 - self.rho)


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected first and second moments.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - mu m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t).

    The state holds the moments without their (1 - b) factors, M = m / (1 - b1) and
    V = v / (1 - b2) (so M <- b1 M + g, V <- b2 V + g^2), and every constant is
    folded into two scalars: the same update, with three fewer passes over the
    parameters per step (the update is bound by memory traffic, not arithmetic).
    """

    name = "adam"
    _state = ("m", "v")
    _uses_work = True

    def __init__(self, learning_rate: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(learning_rate)
        self.beta1 = check_float("beta1", beta1, 0.0, below=1.0)
        self.beta2 = check_float("beta2", beta2, 0.0, below=1.0)
        self.eps = check_float("eps", eps, 0.0, strict=True)

    def _update(self, theta, grad, lr, t, arrays, work, n_weights):
        b1, b2, M, V, w = self.beta1, self.beta2, arrays["m"], arrays["v"], work
        xp = namespace(theta)
        M *= b1
        M += grad  # M = m / (1 - b1)
        V *= b2
        xp.multiply(grad, grad, out=w)
        V += w  # V = v / (1 - b2)
        e, inv_c = self._scalars(lr, t)
        xp.sqrt(V, out=w)
        w += e
        w *= inv_c
        xp.divide(M, w, out=w)
        theta -= w

    def _scalars(self, lr, t):
        # m_hat / (sqrt(v_hat) + eps) = M / (sqrt(V) + e) * c, with
        # c = (1 - b1) / (1 - b1^t) * sqrt((1 - b2^t) / (1 - b2)) and e = eps * sqrt((1 - b2^t) / (1 - b2))
        b1, b2 = self.beta1, self.beta2
        r2 = math.sqrt((1 - b2 ** t) / (1 - b2))
        c = lr * (1 - b1) / (1 - b1 ** t) * r2
        return self.eps * r2, 1.0 / c

    def _fused_args(self, lr, t, n_weights, dt):
        e, inv_c = self._scalars(lr, t)
        return dt(self.beta1), dt(self.beta2), dt(e), dt(inv_c), dt(1), 0  # (no decay)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): Adam with decoupled weight decay on the weight rows.

    Before the Adam step, theta_w <- theta_w (1 - mu lambda) on every weight row;
    bias rows are never decayed.
    """

    name = "adamw"

    def __init__(self, learning_rate: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(learning_rate, beta1, beta2, eps)
        self.weight_decay = check_float("weight_decay", weight_decay, 0.0)

    def _update(self, theta, grad, lr, t, arrays, work, n_weights):
        theta[:n_weights] *= 1 - lr * self.weight_decay
        super()._update(theta, grad, lr, t, arrays, work, n_weights)

    def _fused_args(self, lr, t, n_weights, dt):
        return super()._fused_args(lr, t, n_weights, dt)[:4] + (dt(1 - lr * self.weight_decay), n_weights)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    c.name: c for c in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW)
}
"""Every optimizer by name: the one list shared by the API, the CLI and checkpoints."""


def get_optimizer(spec, **kwargs) -> Optimizer:
    """An optimizer from an instance (returned as is: training never changes it) or a
    name (built with ``kwargs``).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(spec, Optimizer):
        return spec
    return OPTIMIZERS[lookup("optimizer", OPTIMIZERS, spec)](**kwargs)
