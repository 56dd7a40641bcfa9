"""Output likelihoods: the training criterion of eq. (1) and the output delta of eqs. (7)-(8).

The lecture trains by maximum likelihood, so the output activation ``o`` and the
loss come in pairs, one per distribution of y given x. For the canonical pairs
(Bernoulli/sigmoid, Categorical/softmax, Gaussian/identity, Poisson/exp) eq. (8)
simplifies to ``delta = o - y``, and the loss is computed from the logits ``z``
(log-sum-exp, log-sigmoid), so no probability of 0 or 1 ever reaches a log.

:class:`GeneralOutput` is eq. (8) as written, for any elementwise output
activation paired with a loss on ``o``: ``delta = grad_o J * o'(z)``; the
textbook sigmoid-output, squared-error network is ``"sigmoid+squared_error"``.

Targets are encoded once, before training, into a float matrix ``T`` of shape
``(N, K)`` (one-hot rows for Categorical), so that a batch's loss and delta need
only elementwise work and dot products on preallocated buffers.

Conventions
-----------
``loss_and_delta(z, T, o, delta, work, nll)`` writes ``-log p(y_i|x_i)`` of each
row into the column ``nll`` (constants that do not depend on the weights, such as
``log y!`` for Poisson or ``log(2 pi)/2`` for Gaussian, are left out), writes ``o``,
and writes ``delta = d(-log p)/dz`` row by row; ``work`` is scratch. The engine
averages (or weights) the rows: see :mod:`deltaprop.core.objective` for the one
place where J is defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import lookup
from ..validation import check_values
from .activations import ACTIVATIONS, Activation, get_activation
from .backend import namespace

Array = np.ndarray


def _as_numeric(y, name: str = "y", dtype=None) -> Array:
    """y as numbers: finite and, with ``dtype``, within its range (rows named)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(
            f"{name}: expected numeric targets, found dtype {y.dtype}; "
            "encode class labels as integers 0..K-1 first"
        )
    if y.size == 0:
        raise ValueError(f"{name}: expected at least one target, found an empty array")
    check_values(y, name, dtype)
    return y


def _as_matrix(y: Array, n_outputs: int, name: str) -> Array:
    """Targets of shape (N,) for one output, or (N, K)."""
    if y.ndim == 1 and n_outputs == 1:
        return y.reshape(-1, 1)
    if y.ndim == 2 and y.shape[1] == n_outputs:
        return y
    raise ValueError(
        f"{name}: expected shape (N, {n_outputs})"
        + (" or (N,)" if n_outputs == 1 else "")
        + f" for {n_outputs} output(s), found {y.shape}"
    )


class Likelihood:
    """Interface shared by every output family (documentation and common helpers)."""

    name: str = ""
    task: str = "regression"  # "classification" or "regression": which metric to report
    shortcut: bool = True  # a canonical pair: eq. (8) reduces to delta = o - y

    # eq. (8) term by term, for explanations (the training loop uses loss_and_delta)
    def grad_output(self, o: Array, T: Array) -> Array:
        """grad_o of -log p(y|x), row by row (a new array)."""
        raise NotImplementedError

    def output_prime(self, z: Array, o: Array) -> Array | None:
        """o'(z) elementwise (a new array), or None when o is not elementwise (softmax,
        whose o' is the Jacobian diag(o) - o o^T)."""
        raise NotImplementedError

    def general_delta(self, z: Array, o: Array, T: Array) -> Array:
        """Eq. (8) as written, grad_o J (.) o', row by row (through the Jacobian for softmax)."""
        g, o_prime = self.grad_output(o, T), self.output_prime(z, o)
        if o_prime is not None:
            return g * o_prime
        # softmax: delta_j = sum_k g_k do_k/dz_j = o_j (g_j - sum_k g_k o_k)
        return o * (g - np.sum(g * o, axis=1, keepdims=True))

    def output(self, z: Array, out: Array) -> None:
        """Write the output o(z), the mean of p(y|x), into ``out``."""
        raise NotImplementedError

    def loss_and_delta(self, z: Array, T: Array, o: Array, delta: Array, work: Array, nll: Array) -> None:
        """Write o, delta = d(-log p)/dz and the rows' -log p (column ``nll``, shape (b, 1))."""
        raise NotImplementedError

    def encode_targets(self, y, n_outputs: int, dtype) -> Array:
        """Validate y and return the target matrix T of shape (N, n_outputs)."""
        raise NotImplementedError

    def predict(self, o: Array) -> Array:
        """Point prediction from the output: class indices (categorical), 0/1 (bernoulli,
        one column per label; a 1-D array for one output), else o itself."""
        return o

    def sample_targets(self, rng: np.random.Generator, n: int, n_outputs: int) -> Array:
        """``n`` random targets of the kind this likelihood models, as
        :meth:`encode_targets` takes them (for checks and explanations on made-up data):
        here real values, standard normal, shape (n, n_outputs)."""
        return rng.normal(size=(n, n_outputs))

    # label smoothing: eq. (1) with the targets moved towards the uniform distribution
    def uniform_target(self, n_outputs: int) -> float | None:
        """Each target's value under the uniform distribution over the classes, or None
        for a likelihood without classes (label smoothing does not apply)."""
        return None

    def smooth_targets(self, T: Array, amount: float) -> None:
        """Label smoothing, in place: ``T = (1 - amount) T + amount u``, u the
        :meth:`uniform_target` (not None). The loss and delta of eq. (1) keep their form
        (delta = o - T for the canonical pairs), with soft targets."""
        T *= 1.0 - amount
        T += amount * self.uniform_target(T.shape[1])

    def onnx(self, g, z: str) -> str:
        """The output o(z) as ONNX nodes (see :mod:`deltaprop.io.onnx`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Categorical(Likelihood):
    """One of K classes: softmax output, cross-entropy loss, delta = o - onehot(y)."""

    name = "categorical"
    task = "classification"

    def uniform_target(self, n_outputs):
        return 1.0 / n_outputs

    def sample_targets(self, rng, n, n_outputs):
        return rng.integers(0, n_outputs, n)  # class indices

    def output(self, z, out):
        xp = namespace(z)
        xp.subtract(z, xp.max(z, axis=1, keepdims=True), out=out)
        xp.exp(out, out=out)
        out /= xp.sum(out, axis=1, keepdims=True)

    def loss_and_delta(self, z, T, o, delta, work, nll):
        # -log p = log sum_k e^{z_k} - T.z = (m - T.z) + log sum_k e^{z_k - m}, m = max_k z_k:
        # in this order a confident right answer (m = T.z) keeps its small loss to the
        # rounding of the log near 1, not of m (about 1e-15 for m = 10)
        xp = namespace(z)
        xp.maximum.reduce(z, axis=1, keepdims=True, out=nll)
        xp.subtract(z, nll, out=o)
        xp.exp(o, out=o)
        row = work[:, :1]
        xp.multiply(T, z, out=delta)  # delta as scratch, written last
        xp.add.reduce(delta, axis=1, keepdims=True, out=row)
        nll -= row
        xp.add.reduce(o, axis=1, keepdims=True, out=row)
        o /= row
        xp.log(row, out=row)
        nll += row
        xp.subtract(o, T, out=delta)

    def encode_targets(self, y, n_outputs, dtype):
        y = _as_numeric(y, dtype=dtype)
        if y.ndim == 2 and y.shape[1] == 1 and n_outputs > 1:
            y = y[:, 0]
        if y.ndim == 1:
            if y.dtype.kind == "f" and not np.all(y == np.round(y)):
                raise ValueError("y: expected integer class indices, found non-integer values")
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= n_outputs:
                raise ValueError(
                    f"y: expected class indices in 0..{n_outputs - 1} for {n_outputs} outputs, "
                    f"found values from {lo} to {hi}"
                )
            T = np.zeros((y.shape[0], n_outputs), dtype=dtype)
            T[np.arange(y.shape[0]), y.astype(np.intp)] = 1
            return T
        y = _as_matrix(y, n_outputs, "y")
        if np.any(y < 0) or not np.allclose(y.sum(axis=1), 1, atol=1e-4):
            raise ValueError(
                "y: expected one-hot (or probability) rows that are non-negative and sum to 1"
            )
        return np.ascontiguousarray(y, dtype=dtype)

    def predict(self, o):
        return np.argmax(o, axis=1)

    def grad_output(self, o, T):
        return -T / o  # -log p = -sum_k y_k log o_k

    def output_prime(self, z, o):
        return None

    def onnx(self, g, z):
        return g.node("Softmax", [z], axis=1)


class Bernoulli(Likelihood):
    """0/1 targets, one or several (multilabel): sigmoid output, binary cross-entropy."""

    name = "bernoulli"
    task = "classification"

    def uniform_target(self, n_outputs):
        return 0.5  # (each label its own two classes)

    def sample_targets(self, rng, n, n_outputs):
        return rng.integers(0, 2, (n, n_outputs))

    def output(self, z, out):
        # sigma(z) = exp(z - softplus(z)), accurate for large |z| at both ends
        xp = namespace(z)
        xp.logaddexp(0, z, out=out)
        xp.subtract(z, out, out=out)
        xp.exp(out, out=out)

    def loss_and_delta(self, z, T, o, delta, work, nll):
        # -log p = softplus(z) - y z   (the log-sigmoid form of binary cross-entropy)
        xp = namespace(z)
        xp.logaddexp(0, z, out=work)
        xp.subtract(z, work, out=o)
        xp.exp(o, out=o)
        xp.multiply(T, z, out=delta)
        work -= delta
        xp.add.reduce(work, axis=1, keepdims=True, out=nll)
        xp.subtract(o, T, out=delta)

    def encode_targets(self, y, n_outputs, dtype):
        y = _as_matrix(_as_numeric(y, dtype=dtype), n_outputs, "y")
        if not np.all((y == 0) | (y == 1)):
            bad = y[(y != 0) & (y != 1)].flat[0]
            raise ValueError(f"y: expected 0/1 targets for the bernoulli likelihood, found {bad}")
        return np.ascontiguousarray(y, dtype=dtype)

    def predict(self, o):
        return _threshold(o)

    def grad_output(self, o, T):
        return (o - T) / (o * (1 - o))  # -log p = -(y log o + (1 - y) log(1 - o))

    def output_prime(self, z, o):
        return o * (1 - o)

    def onnx(self, g, z):
        return g.node("Sigmoid", [z])


def _threshold(o: Array) -> Array:
    """0/1 decisions at o = 0.5, one column per output (1-D for one output)."""
    labels = (o > 0.5).astype(np.intp)
    return labels[:, 0] if labels.shape[1] == 1 else labels


class Gaussian(Likelihood):
    """Real targets (one or several): identity output, squared error / 2 (unit variance)."""

    name = "gaussian"

    def output(self, z, out):
        xp = namespace(z)
        xp.copyto(out, z)

    def loss_and_delta(self, z, T, o, delta, work, nll):
        xp = namespace(z)
        xp.copyto(o, z)
        xp.subtract(o, T, out=delta)
        xp.multiply(delta, delta, out=work)
        xp.add.reduce(work, axis=1, keepdims=True, out=nll)
        nll *= 0.5

    def grad_output(self, o, T):
        return o - T  # -log p = 1/2 ||y - o||^2

    def output_prime(self, z, o):
        return np.ones_like(o)

    def onnx(self, g, z):
        return g.node("Identity", [z])

    def encode_targets(self, y, n_outputs, dtype):
        y = _as_matrix(_as_numeric(y, dtype=dtype), n_outputs, "y")
        return np.ascontiguousarray(y, dtype=dtype)


class Poisson(Likelihood):
    """Non-negative counts: exp output, loss o - y log o = e^z - y z."""

    name = "poisson"

    def sample_targets(self, rng, n, n_outputs):
        return rng.poisson(1.0, (n, n_outputs))  # counts

    def output(self, z, out):
        xp = namespace(z)
        with np.errstate(over="ignore"):  # an overflowing rate is caught as divergence
            xp.exp(z, out=out)

    def loss_and_delta(self, z, T, o, delta, work, nll):
        xp = namespace(z)
        self.output(z, o)
        xp.multiply(T, z, out=work)
        xp.subtract(o, work, out=work)  # e^z - y z
        xp.add.reduce(work, axis=1, keepdims=True, out=nll)
        xp.subtract(o, T, out=delta)

    def grad_output(self, o, T):
        return 1 - T / o  # -log p = o - y log o

    def output_prime(self, z, o):
        return o.copy()

    def onnx(self, g, z):
        return g.node("Exp", [z])

    def encode_targets(self, y, n_outputs, dtype):
        y = _as_matrix(_as_numeric(y, dtype=dtype), n_outputs, "y")
        if np.any(y < 0):
            raise ValueError(
                f"y: expected non-negative counts for the poisson likelihood, found {y.min()}"
            )
        return np.ascontiguousarray(y, dtype=dtype)


# --- the general route of eq. (8): any elementwise o paired with a loss on o ----------
@dataclass(frozen=True)
class OutputLoss:
    """A loss J(y, o) written on the output o, with the targets it accepts."""

    name: str
    task: str
    targets_in_unit_interval: bool
    activations: tuple[str, ...] | None = None  # the output activations whose range the loss needs


LOSSES: dict[str, OutputLoss] = {
    "squared_error": OutputLoss("squared_error", "regression", False),
    # log o and log(1 - o) need o in (0, 1): of the activations, only the sigmoid's range
    "binary_cross_entropy": OutputLoss("binary_cross_entropy", "classification", True, ("sigmoid",)),
}


class GeneralOutput(Likelihood):
    """Eq. (8) as written: delta = grad_o J (.) o'(z) for an elementwise output activation.

    Parameters
    ----------
    activation : str or Activation
        The output activation o, any name of :data:`deltaprop.ACTIVATIONS`.
    loss : str
        ``"squared_error"`` (J = 1/2 sum (o - y)^2) or ``"binary_cross_entropy"``
        (J = -sum y log o + (1 - y) log(1 - o), for outputs in (0, 1)).
    """

    def __init__(self, activation: str | Activation, loss: str):
        self.activation = get_activation(activation)
        if loss not in LOSSES:
            raise ValueError(f"loss: unknown name {loss!r}; expected one of {', '.join(LOSSES)}")
        self.loss = LOSSES[loss]
        if self.loss.activations is not None and self.activation.name not in self.loss.activations:
            valid = ", ".join(f"{a}+{loss}" for a in self.loss.activations)
            raise ValueError(f"likelihood: {loss} needs outputs in (0, 1), which {self.activation.name} does not "
                             f"give; valid pairs: {valid}")
        self.name = f"{self.activation.name}+{self.loss.name}"
        self.task = self.loss.task
        self.shortcut = False

    def grad_output(self, o, T):
        if self.loss.name == "squared_error":
            return o - T
        return (o - T) / (o * (1 - o))

    def output_prime(self, z, o):
        return self.activation.prime(z)

    def output(self, z, out):
        self.activation.forward(z, out)

    def loss_and_delta(self, z, T, o, delta, work, nll):
        xp = namespace(z)
        self.activation.forward(z, o)
        if self.loss.name == "squared_error":
            self.activation.derivative(z, o, delta, work)  # delta = o'(z) for now
            xp.subtract(o, T, out=work)  # grad_o J = o - y
            delta *= work
            work *= work
            xp.add.reduce(work, axis=1, keepdims=True, out=nll)
            nll *= 0.5
            return
        with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf is divergence
            # -log p = -(y log o + (1 - y) log(1 - o)) = -(y (log o - log(1 - o)) + log(1 - o))
            xp.log(o, out=work)
            xp.negative(o, out=delta)
            xp.log1p(delta, out=delta)
            work -= delta
            work *= T
            work += delta
            xp.add.reduce(work, axis=1, keepdims=True, out=nll)
            xp.negative(nll, out=nll)
            # grad_o J = (o - y) / (o (1 - o))
            self.activation.derivative(z, o, delta, work)
            xp.subtract(o, T, out=work)
            delta *= work
            xp.subtract(1, o, out=work)
            work *= o
            delta /= work

    def encode_targets(self, y, n_outputs, dtype):
        y = _as_matrix(_as_numeric(y, dtype=dtype), n_outputs, "y")
        if self.loss.targets_in_unit_interval and (np.any(y < 0) or np.any(y > 1)):
            raise ValueError(f"y: expected targets in [0, 1] for {self.loss.name}")
        return np.ascontiguousarray(y, dtype=dtype)

    def predict(self, o):
        return _threshold(o) if self.task == "classification" else o

    def sample_targets(self, rng, n, n_outputs):
        if self.loss.targets_in_unit_interval:
            return rng.integers(0, 2, (n, n_outputs))
        return rng.normal(size=(n, n_outputs))

    def onnx(self, g, z):
        return self.activation.onnx(g, z)


LIKELIHOODS: dict[str, type[Likelihood]] = {
    c.name: c for c in (Bernoulli, Categorical, Gaussian, Poisson)
}
"""The canonical likelihoods by name. Names ``"<activation>+<loss>"`` (for example
``"sigmoid+squared_error"``) build a :class:`GeneralOutput`."""

_ALIASES = {"softmax": "categorical", "sigmoid": "bernoulli", "logistic": "bernoulli",
            "identity": "gaussian", "exp": "poisson", "squared_error": "gaussian"}


def likelihood_names() -> list[str]:
    """Every valid likelihood name: the canonical ones, then each general pairing."""
    return list(LIKELIHOODS) + [f"{a}+{name}" for name, loss in LOSSES.items() for a in ACTIVATIONS
                                if loss.activations is None or a in loss.activations]


def get_likelihood(name: str | Likelihood) -> Likelihood:
    """Look up a likelihood by name.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(name, Likelihood):
        return name
    if isinstance(name, str) and "+" in name:  # a pair: each half by its own registry's rule
        act, _, loss = name.partition("+")
        try:
            activation, loss = get_activation(act), lookup("loss", LOSSES, loss)
        except ValueError:
            activation = None
        if activation is not None:
            return GeneralOutput(activation, loss)  # (a pair whose ranges do not fit says so)
    try:
        return LIKELIHOODS[lookup("likelihood", LIKELIHOODS, name, _ALIASES)]()
    except ValueError:
        raise ValueError(
            f"likelihood: unknown name {name!r}; expected one of {', '.join(LIKELIHOODS)}, "
            f"or '<activation>+<loss>' with a loss in {', '.join(LOSSES)} (e.g. 'sigmoid+squared_error')"
        ) from None
