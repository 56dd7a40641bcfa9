"""Optimizers: eq. (10), ``theta <- theta - mu grad J``, and the refinements that make it work.

Each optimizer updates the flat parameter vector ``theta`` in place, from the flat
gradient ``grad`` (which it may overwrite: the training loop recomputes it every
step). Its state is allocated once, in :meth:`Optimizer.bind`, and a step
allocates nothing. They are sorted by complexity; state starts at zero, so the
first step needs no special case.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import lookup
from .validation import check_float

Array = np.ndarray


class Optimizer:
    """Base class: a learning rate, a step counter ``t`` and preallocated state arrays.

    Subclasses name their state arrays in ``_state`` and implement ``_update`` on
    one block of parameters. Every rule is elementwise, so a step can be taken
    block by block: the training loop updates layer l as soon as backpropagation
    is done with it, while its weights and gradient are still in cache.
    """

    name = ""
    _state: tuple[str, ...] = ()
    _uses_work = False
    folds_learning_rate = False  # True: the gradient arrives as -learning_rate * grad
    flush_every = 32  # steps between flushes of subnormal state values to zero

    def __init__(self, learning_rate: float):
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, strict=True)
        self.t = 0
        self._blocks: list[tuple[slice, int]] = []

    def bind(self, theta: Array, blocks: list[tuple[slice, int]] | None = None) -> "Optimizer":
        """Allocate the state for parameters shaped like ``theta`` (zeros).

        ``blocks`` splits ``theta`` into layers: ``(slice, n_weights)`` per layer, the
        first ``n_weights`` entries of a block being weights and the rest biases (the
        augmented W[l] of eq. (11), flattened). Decoupled weight decay (AdamW) acts on
        weights only. By default the whole of theta is one block of weights.
        """
        for name in self._state:
            setattr(self, name, np.zeros_like(theta))
        self.work = np.empty_like(theta) if self._uses_work else None
        self._blocks = list(blocks) if blocks else [(slice(0, theta.size), theta.size)]
        self.t = 0
        return self

    @property
    def n_blocks(self) -> int:
        return len(self._blocks)

    def begin_step(self) -> None:
        """Count a step (before its blocks are updated)."""
        self.t += 1

    def update_block(self, theta: Array, grad: Array, k: int) -> None:
        """Update block k of ``theta`` in place from the same block of ``grad``."""
        sl, n_weights = self._blocks[k]
        state = {name: getattr(self, name)[sl] for name in self._state}
        if self.work is not None:
            state["work"] = self.work[sl]
        self._update(theta[sl], grad[sl], self.learning_rate, state, n_weights)
        if self._state and self.t % self.flush_every == 0:
            for name in self._state:
                _flush_subnormals(state[name], state["work"])

    def step(self, theta: Array, grad: Array) -> None:
        """One update of ``theta`` in place; ``grad`` may be overwritten."""
        self.begin_step()
        for k in range(len(self._blocks)):
            self.update_block(theta, grad, k)

    def _update(self, theta, grad, lr, state, n_weights):
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        """The constructor arguments (for model files, checkpoints and repr)."""
        return {k: v for k, v in vars(self).items()
                if not k.startswith("_") and k not in self._state and k not in ("t", "work")}

    def state_dict(self) -> tuple[dict, dict[str, Array]]:
        """(scalars, arrays): everything needed to continue bit-identically."""
        return {"t": self.t, **self.hyperparameters()}, {k: getattr(self, k) for k in self._state}

    def load_state_dict(self, scalars: dict, arrays: dict[str, Array]) -> None:
        """Restore what :meth:`state_dict` returned (after :meth:`bind`)."""
        self.t = int(scalars["t"])
        for k, v in scalars.items():
            if k != "t":
                setattr(self, k, v)
        for k in self._state:
            np.copyto(getattr(self, k), arrays[k])

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
    np.abs(a, out=work)
    np.greater_equal(work, np.finfo(a.dtype).tiny, out=work)
    a *= work


class SGD(Optimizer):
    """Plain gradient descent, eq. (10): theta <- theta - mu g.

    In training, the backward pass delivers ``-mu g`` directly (the factor costs
    nothing there, see ``Network.backward_pass``), and the update is one addition.
    """

    name = "sgd"
    folds_learning_rate = True

    def __init__(self, learning_rate: float = 0.1):
        super().__init__(learning_rate)

    def _update(self, theta, grad, lr, state, n_weights):
        grad *= lr
        theta -= grad

    def apply_block(self, theta: Array, step: Array, k: int) -> None:
        """theta <- theta + step on block k, where step = -mu g came from the backward pass."""
        sl = self._blocks[k][0]
        theta[sl] += step[sl]


class Momentum(SGD):
    """Heavy-ball momentum: v <- beta v - mu g;  theta <- theta + v."""

    name = "momentum"
    _state = ("velocity",)
    _uses_work = True
    folds_learning_rate = False

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9):
        super().__init__(learning_rate)
        self.momentum = check_float("momentum", momentum, 0.0, below=1.0)

    def _update(self, theta, grad, lr, state, n_weights):
        v = state["velocity"]
        v *= self.momentum
        grad *= lr
        v -= grad
        theta += v


class Nesterov(Momentum):
    """Nesterov momentum (Sutskever's form): v <- beta v - mu g;  theta <- theta + beta v - mu g."""

    name = "nesterov"

    def _update(self, theta, grad, lr, state, n_weights):
        v = state["velocity"]
        v *= self.momentum
        grad *= lr
        v -= grad
        theta -= grad
        np.multiply(v, self.momentum, out=grad)
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
        np.multiply(grad, grad, out=work)
        s += work

    def _update(self, theta, grad, lr, state, n_weights):
        s, work = state["sum_sq"], state["work"]
        self._accumulate(grad, s, work)
        np.sqrt(s, out=work)
        work += self.eps
        grad /= work
        grad *= lr
        theta -= grad


class RMSProp(AdaGrad):
    """RMSProp: s <- rho s + (1 - rho) g^2;  theta <- theta - mu g / (sqrt(s) + eps)."""

    name = "rmsprop"

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(learning_rate, eps)
        self.rho = check_float("rho", rho, 0.0, below=1.0)

    def _accumulate(self, grad, s, work):
        np.multiply(grad, grad, out=work)
        work *= 1 - self.rho
        s *= self.rho
        s += work


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

    def _update(self, theta, grad, lr, state, n_weights):
        b1, b2, M, V, w = self.beta1, self.beta2, state["m"], state["v"], state["work"]
        M *= b1
        M += grad  # M = m / (1 - b1)
        V *= b2
        np.multiply(grad, grad, out=w)
        V += w  # V = v / (1 - b2)
        # m_hat / (sqrt(v_hat) + eps) = M / (sqrt(V) + e) * c, with
        # c = (1 - b1) / (1 - b1^t) * sqrt((1 - b2^t) / (1 - b2)) and e = eps * sqrt((1 - b2^t) / (1 - b2))
        r2 = math.sqrt((1 - b2 ** self.t) / (1 - b2))
        c = lr * (1 - b1) / (1 - b1 ** self.t) * r2
        np.sqrt(V, out=w)
        w += self.eps * r2
        w *= 1.0 / c
        np.divide(M, w, out=w)
        theta -= w


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

    def _update(self, theta, grad, lr, state, n_weights):
        theta[:n_weights] *= 1 - lr * self.weight_decay
        super()._update(theta, grad, lr, state, n_weights)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    c.name: c for c in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW)
}
"""Every optimizer by name: the one list shared by the API, the CLI and checkpoints."""


def get_optimizer(spec, **kwargs) -> Optimizer:
    """An optimizer from an instance (returned as is) or a name (built with ``kwargs``).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(spec, Optimizer):
        return spec
    return OPTIMIZERS[lookup("optimizer", OPTIMIZERS, spec)](**kwargs)
