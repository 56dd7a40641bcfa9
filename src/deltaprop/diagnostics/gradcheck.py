"""Gradient checking: backpropagation against central finite differences, in float64.

What is checked is the gradient the training loop uses, that of
:meth:`Objective.value_and_grad <deltaprop.core.objective.Objective.value_and_grad>`:
the mean (or sample-weighted) negative log-likelihood plus the L2 penalty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.network import Network, as_rng
from ..core.objective import Objective
from ..validation import check_float, check_int, check_weights

Array = np.ndarray


@dataclass
class GradcheckResult:
    """Per-layer agreement between backpropagation and finite differences.

    Attributes
    ----------
    errors : dict of int to float
        For each layer l, the largest relative error over the checked entries of W[l].
    tolerance : float
        The threshold of the verdict.
    passed : bool
        True when every layer's error is below ``tolerance``.
    n_checked : dict of int to int
        How many entries of each W[l] were checked (those at a relu kink are not).
    """

    errors: dict[int, float]
    tolerance: float
    n_checked: dict[int, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(e < self.tolerance for e in self.errors.values())

    @property
    def max_error(self) -> float:
        return max(self.errors.values())

    def __bool__(self) -> bool:
        return self.passed

    def report(self) -> str:
        """One line per layer, then the verdict."""
        lines = [
            f"layer {l}: max relative error {e:.3e} over {self.n_checked.get(l, 0)} weights"
            for l, e in self.errors.items()
        ]
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict}: max {self.max_error:.3e} (tolerance {self.tolerance:.0e})")
        return "\n".join(lines)


def error_floor(G: Array, minimum: float = 1e-10) -> float:
    """The floor of :func:`relative_error` for a layer whose gradient is ``G``: 1e-3 of its
    largest entry, and at least ``minimum`` (see :func:`rounding_floor`)."""
    return max(1e-3 * float(np.max(np.abs(G), initial=0.0)), minimum)


def relative_error(analytic: Array, numeric: Array, floor: float | None = None) -> Array:
    """|a - n| / max(|a|, |n|, floor), elementwise.

    The floor keeps entries whose gradient is zero, or nearly so (a dead relu, a
    saturated unit), from dividing the finite-difference noise (about 1e-12) by
    itself: entries below it are judged by their absolute error instead. By
    default it is :func:`error_floor` of ``analytic``, so every entry that matters
    for the layer is checked to the full tolerance.
    """
    if floor is None:
        floor = error_floor(analytic)
    return np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)


def rounding_floor(objective: Objective, b: int, eps: float, tolerance: float = 1e-6) -> float:
    """The smallest gradient entry whose estimate can be trusted to ``tolerance``, right after
    J was evaluated on a batch of b rows: J is rounded to about 1e-16 of its largest term
    (|z[L]| + 1), which a difference over ``eps`` magnifies 1/eps times. A confidently right
    output (J near 0, every gradient tiny) needs it; smaller entries are judged by their
    absolute error."""
    z = objective.workspace(b).z[objective.net.n_layers][:b]
    return max(1e-10, 4 * np.finfo(np.float64).eps * (1 + float(np.abs(z).max())) / eps / tolerance)


_KINKED = ("relu", "leaky_relu")  # phi' jumps at 0


def numeric_gradient(objective: Objective, batch, index, eps: float = 1e-3) -> Array:
    """Finite-difference estimates of dJ/dtheta[i] for each i of ``index``, at the network's
    ``theta`` (restored after), on a batch ``(X, T[, w])``: the fourth-order central difference
    ``(8 (J(w+e) - J(w-e)) - (J(w+2e) - J(w-2e))) / (12 e)``, whose truncation error is
    O(e^4), so that e can be large enough for rounding in J to stay far below 1e-6.

    An entry whose steps move a relu or leaky_relu unit to the other side of 0 on some row
    gets NaN: across the kink a difference is not a derivative.
    """
    net, theta = objective.net, objective.net.theta
    b = len(batch[0])
    ws = objective.workspace(b)
    kinked = [l for l in range(1, net.n_layers) if net.activations[l].name in _KINKED]
    objective.value(theta, batch)
    sides = [ws.z[l][:b] > 0 for l in kinked]
    numeric = np.empty(len(index))
    for k, i in enumerate(index):
        old = theta[i]
        J, same_side = {}, True
        for step in (-2, -1, 1, 2):
            theta[i] = old + step * eps
            J[step] = objective.value(theta, batch)
            same_side = same_side and all(np.array_equal(ws.z[l][:b] > 0, side) for l, side in zip(kinked, sides))
        theta[i] = old
        numeric[k] = (8 * (J[1] - J[-1]) - (J[2] - J[-2])) / (12 * eps) if same_side else np.nan
    return numeric


def gradcheck(
    net: Network,
    X,
    y,
    *,
    sample_weight=None,
    l2: float = 0.0,
    alpha: float = 0.0,
    label_smoothing: float = 0.0,
    eps: float = 1e-3,
    tolerance: float = 1e-6,
    max_per_layer: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> GradcheckResult:
    """Compare backpropagation's gradient with central finite differences.

    Works on a float64 copy of ``net`` (the network itself is not changed):
    each checked weight w gets the fourth-order central difference
    ``(8 (J(w+e) - J(w-e)) - (J(w+2e) - J(w-2e))) / (12 e)``, where J is the
    objective (the mean, or weighted mean, negative log-likelihood plus the L2
    penalty). Its truncation error is
    O(e^4), so e = 1e-3 keeps truncation near 1e-12 and rounding near 1e-13. Weights
    whose steps move a relu or leaky_relu unit across 0 are left out (a difference
    across the kink is not a derivative), and entries too small for the rounding in J
    (:func:`rounding_floor`) are judged by their absolute error.

    Parameters
    ----------
    net : Network
    X, y : array-like
        A (small) batch and its targets.
    sample_weight : array-like of shape (n_samples,) or (n_samples, members), optional
        For an ensemble, a column for each member is taken too.
    l2 : float
        The L2 penalty of the objective.
    alpha : float
        The L2 penalty as scikit-learn scales it (see :class:`~deltaprop.Objective`).
    label_smoothing : float
        J on smoothed class targets (see :class:`~deltaprop.Objective`).
    eps : float
        The finite-difference step.
    tolerance : float
        The verdict: passed when every layer's max relative error is below it.
    max_per_layer : int or None
        Check at most this many randomly chosen weights per layer (all when None).
    seed : int or Generator
        Chooses the weights when ``max_per_layer`` is set.

    Returns
    -------
    GradcheckResult
    """
    eps = check_float("eps", eps, 0.0, strict=True)
    tolerance = check_float("tolerance", tolerance, 0.0, strict=True)
    if max_per_layer is not None:
        max_per_layer = check_int("max_per_layer", max_per_layer, 1)
    net64 = net.copy(dtype=np.float64, backend="numpy")  # (checked on the host: tests check the other backends)
    X64 = net64.check_X(X)
    T = net64.encode_targets(y, X64.shape[0])
    w = None if sample_weight is None else check_weights(sample_weight, X64.shape[0], members=net.members)
    batch = (X64, T) if w is None else (X64, T, w.astype(np.float64))
    objective = Objective(net64, l2=l2, alpha=alpha, label_smoothing=label_smoothing)
    theta = net64.theta
    objective.value_and_grad(theta, batch)
    G = [None] + [g.copy() for g in objective.G[1:]]
    minimum = rounding_floor(objective, X64.shape[0], eps, tolerance)
    rng = as_rng(seed)
    errors, counts = {}, {}
    for l, (block, _) in enumerate(net64.layer_slices(), start=1):
        size = block.stop - block.start
        flat_idx = np.arange(size)
        if max_per_layer is not None and size > max_per_layer:
            flat_idx = rng.choice(size, size=max_per_layer, replace=False)
        numeric = numeric_gradient(objective, batch, block.start + flat_idx, eps)
        ok = ~np.isnan(numeric)  # (entries at a relu kink are not checkable)
        errors[l] = float(relative_error(G[l].reshape(-1)[flat_idx][ok], numeric[ok],
                                         error_floor(G[l], minimum)).max(initial=0.0))
        counts[l] = int(ok.sum())
    return GradcheckResult(errors, tolerance, counts)
