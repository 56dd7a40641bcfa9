"""L-BFGS: the lecture's full-batch criterion minimized by a quasi-Newton method.

Gradient descent (eq. (10)) steps along -grad J with a fixed learning rate;
L-BFGS builds a curvature estimate from the last few gradients and searches
along the direction it gives, which on small data sets reaches a minimum in
far fewer passes. It needs exactly what :class:`~deltaprop.core.objective.Objective`
provides: J and its gradient as one flat vector at any ``theta``. The method
itself is SciPy's (``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``),
imported when called: the core of deltaprop does not need SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..threads import blas_limit, largest_product

Array = np.ndarray

# multiply-adds per product below which one BLAS thread is used: on the 2-core development
# machine one thread was as fast or faster up to 20000 x 785 x 100 (1.6 G; 230 ms an
# iteration against 240 ms), and three times as fast on digits (4 ms against 13 ms), the
# idle OpenBLAS thread spinning against SciPy's single-threaded update between evaluations
SMALL_PRODUCT = 2_000_000_000


@dataclass
class LBFGSResult:
    """What :func:`minimize_lbfgs` reports.

    Attributes
    ----------
    loss : float
        J at the final ``theta`` (penalty included).
    n_iter : int
        Iterations taken (each a line search of one or more evaluations).
    n_evaluations : int
        Evaluations of J and its gradient.
    status : int
        SciPy's code: 0 converged, 1 an iteration or evaluation limit stopped it,
        2 the line search failed.
    message : str
        SciPy's account of why it stopped.
    """

    loss: float
    n_iter: int
    n_evaluations: int
    status: int
    message: str


def minimize_lbfgs(objective, batch, *, max_iter: int = 200, max_fun: int = 15000, tol: float = 1e-4,
                   verbose: bool = False, blas_threads: int | None = None) -> LBFGSResult:
    """Minimize ``objective`` on one (full) batch by L-BFGS, starting from the network's ``theta``.

    Parameters
    ----------
    objective : Objective
        J (with its penalty) of the network to train; the network ends at the minimizer.
    batch : (X, T) or (X, T, w), or a filled workspace of ``objective``
        All the training rows, as for :meth:`Objective.value_and_grad`.
    max_iter, max_fun : int
        At most this many iterations and evaluations of J.
    tol : float
        Stop when every entry of the projected gradient is below it (SciPy's ``gtol``).
    verbose : bool
        Print the loss after each iteration.
    blas_threads : int, optional
        Threads for the matrix products; by default one below 2 G multiply-adds per
        product (see :mod:`deltaprop.threads`), else the BLAS library's setting.

    Returns
    -------
    LBFGSResult

    Notes
    -----
    SciPy works in float64; a float32 network is evaluated in float32 and its
    gradient handed over in float64. A trial point where J overflows is rejected
    by SciPy's line search, which steps back (tested).
    """
    from scipy.optimize import minimize

    net = objective.net
    grad64 = np.empty(net.n_params, dtype=np.float64)

    def fun(theta):
        J, grad = objective.value_and_grad(theta, batch)
        np.copyto(grad64, grad)
        return J, grad64

    last = [math.nan, 0]

    def report(theta):  # after each iteration; the line search's last J is the accepted point's
        last[1] += 1
        print(f"Iteration {last[1]}, loss = {last[0]:.8f}")

    def fun_verbose(theta):
        last[0], g = fun(theta)
        return last[0], g

    options = {"maxiter": max_iter, "maxfun": max_fun, "gtol": tol}
    n_rows = batch.n if hasattr(batch, "n") else len(batch[0])
    with np.errstate(over="ignore", invalid="ignore", under="ignore"), \
            blas_limit(blas_threads, largest_product(net.sizes, n_rows), SMALL_PRODUCT):
        res = minimize(fun_verbose if verbose else fun, net.theta.astype(np.float64), method="L-BFGS-B",
                       jac=True, options=options, callback=report if verbose else None)
    np.copyto(net.theta, res.x)
    message = res.message.decode() if isinstance(res.message, bytes) else str(res.message)
    return LBFGSResult(float(res.fun), int(res.nit), int(res.nfev), int(res.status), message)
