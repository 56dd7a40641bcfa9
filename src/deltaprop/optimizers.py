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

Array = np.ndarray


class Optimizer:
    """Base class: a learning rate, a step counter ``t`` and preallocated state arrays.

    Subclasses name their state arrays in ``_state`` and implement ``_step``.
    """

    name = ""
    _state: tuple[str, ...] = ()
    _uses_work = False

    def __init__(self, learning_rate: float):
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.t = 0
        self._decay_views: list[Array] = []

    def bind(self, theta: Array, weight_views: list[Array] | None = None) -> "Optimizer":
        """Allocate the state for parameters shaped like ``theta`` (zeros).

        ``weight_views`` are the views of ``theta`` that decoupled weight decay acts
        on (the weight rows, never the bias rows).
        """
        for name in self._state:
            setattr(self, name, np.zeros_like(theta))
        self.work = np.empty_like(theta) if self._uses_work else None
        self._decay_views = list(weight_views or [])
        self.t = 0
        return self

    def step(self, theta: Array, grad: Array) -> None:
        """One update of ``theta`` in place; ``grad`` may be overwritten."""
        self.t += 1
        self._step(theta, grad, self.learning_rate)

    def _step(self, theta, grad, lr):
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


class SGD(Optimizer):
    """Plain gradient descent, eq. (10): theta <- theta - mu g."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.1):
        super().__init__(learning_rate)

    def _step(self, theta, grad, lr):
        grad *= lr
        theta -= grad


class Momentum(SGD):
    """Heavy-ball momentum: v <- beta v - mu g;  theta <- theta + v."""

    name = "momentum"
    _state = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9):
        super().__init__(learning_rate)
        self.momentum = _fraction("momentum", momentum)

    def _step(self, theta, grad, lr):
        v = self.velocity
        v *= self.momentum
        grad *= lr
        v -= grad
        theta += v


class Nesterov(Momentum):
    """Nesterov momentum (Sutskever's form): v <- beta v - mu g;  theta <- theta + beta v - mu g."""

    name = "nesterov"

    def _step(self, theta, grad, lr):
        v = self.velocity
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
        self.eps = _positive("eps", eps)

    def _accumulate(self, grad):
        np.multiply(grad, grad, out=self.work)
        self.sum_sq += self.work

    def _step(self, theta, grad, lr):
        self._accumulate(grad)
        np.sqrt(self.sum_sq, out=self.work)
        self.work += self.eps
        grad /= self.work
        grad *= lr
        theta -= grad


class RMSProp(AdaGrad):
    """RMSProp: s <- rho s + (1 - rho) g^2;  theta <- theta - mu g / (sqrt(s) + eps)."""

    name = "rmsprop"

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(learning_rate, eps)
        self.rho = _fraction("rho", rho)

    def _accumulate(self, grad):
        np.multiply(grad, grad, out=self.work)
        self.work *= 1 - self.rho
        self.sum_sq *= self.rho
        self.sum_sq += self.work


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected first and second moments.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    theta <- theta - mu m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t). The corrections are folded into two scalars (the
    "efficient version" of the paper's section 2), which is the same update exactly.
    """

    name = "adam"
    _state = ("m", "v")
    _uses_work = True

    def __init__(self, learning_rate: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(learning_rate)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = _positive("eps", eps)

    def _step(self, theta, grad, lr):
        b1, b2, w = self.beta1, self.beta2, self.work
        self.m *= b1
        np.multiply(grad, 1 - b1, out=w)
        self.m += w
        self.v *= b2
        np.multiply(grad, grad, out=w)
        w *= 1 - b2
        self.v += w
        c2 = math.sqrt(1 - b2 ** self.t)
        step = lr * c2 / (1 - b1 ** self.t)
        np.sqrt(self.v, out=w)
        w += self.eps * c2
        np.divide(self.m, w, out=w)
        w *= step
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
        self.weight_decay = _non_negative("weight_decay", weight_decay)

    def _step(self, theta, grad, lr):
        shrink = 1 - lr * self.weight_decay
        for W in self._decay_views:
            W *= shrink
        super()._step(theta, grad, lr)


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
    if not isinstance(spec, str):
        raise TypeError(f"optimizer: expected an Optimizer or a name, found {type(spec).__name__}")
    key = spec.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown name {spec!r}; expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)


def _positive(name, value):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive number, found {value!r}")
    return float(value)


def _non_negative(name, value):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a non-negative number, found {value!r}")
    return float(value)


def _fraction(name, value):
    if not (isinstance(value, (int, float, np.floating)) and 0 <= value < 1):
        raise ValueError(f"{name}: expected a number in [0, 1), found {value!r}")
    return float(value)
