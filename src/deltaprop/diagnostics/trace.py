"""One forward and backward pass and the update it implies, recorded as plain arrays.

:func:`trace` evaluates the lecture's equations on any network or saved model and
any batch (usually one sample), in float64, and returns a :class:`StepTrace`: for
every layer l, ``h[l-1]`` with its trailing 1, ``z[l]``, ``h[l]``, ``delta[l]``,
``G[l]`` (its last row the bias gradient of eq. (12)), the update ``-mu G[l]`` of
eq. (10), and, where it was computed, the central-difference estimate of each
gradient entry with its relative error. ``deltaprop explain`` prints it
(:mod:`deltaprop.diagnostics.explain`); tests and notebooks read it directly.

J here is the criterion the training loop minimizes (:mod:`deltaprop.core.objective`)
without a penalty: the mean of -log p(y|x) over the batch, so each row of
``delta[L]`` carries a factor 1/B (for one sample, none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.objective import Objective
from ..validation import check_float, check_int
from .gradcheck import error_floor, numeric_gradient, relative_error, rounding_floor

Array = np.ndarray

CHECK_ALL_UP_TO = 2000  # parameters: a network this small has every gradient entry checked
CHECK_PER_LAYER = 24  # entries per layer checked in larger networks


@dataclass
class LayerTrace:
    """Layer l of one step (rows are samples).

    Attributes
    ----------
    l : int
        The layer, 1..L.
    activation : str
        phi for a hidden layer; the likelihood's name for the output layer.
    h_prev : ndarray (B, D_{l-1} + 1)
        ``h[l-1]``, the layer's input with its trailing 1 (eq. (11)).
    z : ndarray (B, D_l)
        ``z[l] = h[l-1] W[l]`` (eq. (3), rows as samples).
    h : ndarray
        ``phi(z[l])`` (B, D_l) for a hidden layer, the output o for layer L.
    phi_prime : ndarray or None
        ``phi'(z[l])`` for a hidden layer.
    delta : ndarray (B, D_l)
        ``dJ/dz[l]`` (eq. (7)).
    W : ndarray (D_{l-1} + 1, D_l)
        The weights before the step, bias as the last row.
    G : ndarray like W
        ``h[l-1]^T delta[l]`` (eq. (9)); its last row is the bias gradient (eq. (12)).
    update : ndarray like W
        ``-mu G`` (eq. (10)).
    G_numeric, rel_error : ndarray like W, or None
        The central-difference estimate of each entry and its relative error (NaN for
        entries not checked; None when no entry was).
    """

    l: int
    activation: str
    h_prev: Array
    z: Array
    h: Array
    phi_prime: Array | None
    delta: Array
    W: Array
    G: Array
    update: Array
    G_numeric: Array | None = None
    rel_error: Array | None = None

    @property
    def W_after(self) -> Array:
        """The weights after the step, ``W + update``."""
        return self.W + self.update

    @property
    def n_checked(self) -> int:
        return 0 if self.rel_error is None else int(np.sum(~np.isnan(self.rel_error)))

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over the checked entries (NaN when none was checked)."""
        if not self.n_checked:
            return float("nan")
        return float(np.nanmax(self.rel_error))


@dataclass
class StepTrace:
    """One step of backpropagation and gradient descent, number by number.

    Attributes
    ----------
    sizes : list of int
    activations : list of str
        The hidden activations.
    likelihood : str
    learning_rate : float
        mu of eq. (10).
    X : ndarray (B, D_0)
        The network's input (after the model's preprocessing, if any).
    T : ndarray (B, D_L)
        The encoded targets y (one-hot rows for a categorical output).
    o : ndarray (B, D_L)
        The output.
    J, J_after : float
        The criterion before and after the step.
    grad_o : ndarray (B, D_L)
        ``grad_o J``, the first factor of eq. (8).
    o_prime : ndarray or None
        ``o'(z[L])``, the second; None for softmax, whose o' is a Jacobian.
    delta_general : ndarray (B, D_L)
        Eq. (8) as written (through the Jacobian for softmax).
    delta_shortcut : ndarray or None
        ``(o - y) / B``: the canonical pairs' shortcut (None for other pairs).
    layers : list of LayerTrace
        Layers 1..L (``layer(l)`` indexes them as the lecture does).
    raw_X : ndarray or None
        The rows as given, when a model standardized them.
    labels : list or None
        The model's class labels.
    eps : float
        The finite-difference step of the checks.
    """

    sizes: list
    activations: list
    likelihood: str
    learning_rate: float
    X: Array
    T: Array
    o: Array
    J: float
    J_after: float
    grad_o: Array
    o_prime: Array | None
    delta_general: Array
    delta_shortcut: Array | None
    layers: list = field(default_factory=list)
    raw_X: Array | None = None
    labels: list | None = None
    eps: float = 1e-3

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def layer(self, l: int) -> LayerTrace:
        """Layer ``l``, counted from 1 as in the lecture."""
        if not 1 <= l <= self.n_layers:
            raise IndexError(f"layer: expected 1..{self.n_layers}, found {l}")
        return self.layers[l - 1]

    @property
    def max_rel_error(self) -> float:
        """The largest relative error of any checked gradient entry (NaN when none was)."""
        errors = [e for e in (lay.max_rel_error for lay in self.layers) if not np.isnan(e)]
        return max(errors) if errors else float("nan")

    # -- display (see deltaprop.diagnostics.explain) --------------------------------------
    def explain(self, format: str = "text", units=None, max_width: int = 10) -> str:
        """The step as the lecture tells it, in ``format`` text, markdown or html."""
        from .explain import render

        return render(self, format, units=units, max_width=max_width)

    def __str__(self) -> str:
        return self.explain("text")

    def _repr_markdown_(self) -> str:
        return self.explain("markdown")

    def _repr_html_(self) -> str:
        from .explain import html_cell

        return html_cell(self)


def trace(model_or_network, X, y, learning_rate: float = 0.1, *, check: bool | int | None = None,
          eps: float = 1e-3) -> StepTrace:
    """Record one forward and backward pass on (X, y) and the update it implies.

    Parameters
    ----------
    model_or_network : Model or Network
        A :class:`~deltaprop.Model` takes raw rows and labels (its preprocessing and
        label encoding are applied); a :class:`~deltaprop.Network` takes its own inputs
        and targets. Either way the step is computed on a float64 copy: nothing is changed.
    X : array-like of shape (B, D_0), or (D_0,) for one sample
    y : the targets of those rows
    learning_rate : float
        mu of eq. (10).
    check : bool or int, optional
        Finite-difference estimates of the gradient entries: True for every entry,
        an int for that many per layer (chosen evenly), False for none. By default,
        every entry of networks of up to 2,000 parameters, else 24 per layer.
    eps : float
        The finite-difference step.

    Returns
    -------
    StepTrace
    """
    learning_rate = check_float("learning_rate", learning_rate, 0.0, strict=True)
    eps = check_float("eps", eps, 0.0, strict=True)
    net, raw, labels = model_or_network, None, None
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(1, -1) if X.ndim == 1 else X
    y = np.asarray(y)
    if y.ndim == 0 or (y.ndim == 1 and X.shape[0] == 1 and len(y) > 1):  # one sample's target(s)
        y = y.reshape(1, -1) if y.ndim == 1 else y.reshape(1)
    if hasattr(model_or_network, "network"):  # a Model: raw rows in, labels through its encoding
        net, raw = model_or_network.network, X
        X, T = model_or_network.transform(raw), model_or_network.encode_targets(y)
        labels = None if model_or_network.classes is None else model_or_network.classes.tolist()
    else:
        T = net.encode_targets(y, X.shape[0])
    if net.members > 1:
        raise ValueError(f"trace: the network is an ensemble of {net.members} members; a step of the "
                         "lecture is traced on one network (members=1)")
    net64 = net.copy(dtype=np.float64, backend="numpy")  # (every quantity shown is host data)
    X = net64.check_X(X)
    T = np.asarray(T, dtype=np.float64)
    B, L = X.shape[0], net64.n_layers
    # the reference path, which writes phi' to its own buffer (the fused one multiplies delta by it in place)
    objective = Objective(net64, kernels="numpy")
    batch = (X, T)
    J, grad = objective.value_and_grad(net64.theta, batch)
    grad = grad.copy()
    ws = objective.workspace(B)
    theta = net64.theta.copy()
    G = [None] + [g.copy() for g in objective.G[1:]]

    z_L, o = ws.z[L][:B].copy(), ws.o[:B].copy()
    lik = net64.likelihood
    grad_o = lik.grad_output(o, T) / B  # J is the batch mean: each row's gradient carries 1/B
    o_prime = lik.output_prime(z_L, o)
    delta_general = lik.general_delta(z_L, o, T) / B
    delta_shortcut = (o - T) / B if lik.shortcut else None

    layers = []
    for l in range(1, L + 1):
        hidden = l < L
        layers.append(LayerTrace(
            l=l, activation=net64.activations[l].name if hidden else lik.name, h_prev=ws.h[l - 1][:B].copy(),
            z=ws.z[l][:B].copy(), h=ws.a[l][:B].copy() if hidden else o,
            phi_prime=ws.dphi[l][:B].copy() if hidden else None, delta=ws.delta[l][:B].copy(),
            W=net64.W[l].copy(), G=G[l], update=-learning_rate * G[l]))
    minimum = rounding_floor(objective, B, eps)  # (while the workspace holds the pass at theta)
    # (the estimates reuse the objective's buffers: the layers' arrays are copied first)
    for layer, G_num in zip(layers, _estimates(objective, batch, net64, check, eps) or ()):
        layer.G_numeric = G_num
        layer.rel_error = np.full(G_num.shape, np.nan)
        done = ~np.isnan(G_num)
        layer.rel_error[done] = relative_error(layer.G[done], G_num[done], error_floor(layer.G, minimum))
    np.copyto(net64.theta, theta - learning_rate * grad)
    J_after = objective.value(net64.theta, batch)
    return StepTrace(sizes=list(net64.sizes), activations=net64.activation_names, likelihood=lik.name,
                     learning_rate=learning_rate, X=X, T=T, o=o, J=float(J), J_after=float(J_after), grad_o=grad_o,
                     o_prime=o_prime, delta_general=delta_general, delta_shortcut=delta_shortcut, layers=layers,
                     raw_X=raw if raw is not None and not np.array_equal(raw, X) else None, labels=labels, eps=eps)


def _estimates(objective, batch, net, check, eps) -> list | None:
    """Per layer, the finite-difference estimate of each chosen entry: NaN for entries not
    chosen, and for those at a relu kink (see :func:`numeric_gradient`)."""
    if check is False:
        return None
    if check is None or check is True:
        per_layer = None if (check is True or net.n_params <= CHECK_ALL_UP_TO) else CHECK_PER_LAYER
    else:
        per_layer = check_int("check", check, 1)
    out = []
    for l, (block, _) in enumerate(net.layer_slices(), start=1):
        size = block.stop - block.start
        # evenly spaced entries, so that the choice needs no random state and covers the bias row
        idx = np.arange(size) if per_layer is None or per_layer >= size else \
            np.unique(np.linspace(0, size - 1, per_layer).round().astype(np.intp))
        est = np.full(size, np.nan)
        est[idx] = numeric_gradient(objective, batch, block.start + idx, eps)
        out.append(est.reshape(net.W[l].shape))
    return out


def explain_step(net, x, y, learning_rate: float) -> str:
    """One step for one sample told as text: ``trace(net, x, y, learning_rate).explain()``.

    Parameters
    ----------
    net : Network
        Works on a float64 copy; ``net`` itself is not changed.
    x : array-like of shape (D_0,)
    y : the sample's target, as the likelihood expects it
    learning_rate : float
        mu of eq. (10).
    """
    return trace(net, x, y, learning_rate).explain("text")
