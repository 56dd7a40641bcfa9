"""L-BFGS on the objective: it minimizes J, honours its limits, and survives overflowing steps."""

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim.lbfgs import minimize_lbfgs


def test_minimizes_the_objective_to_a_small_gradient():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    net = dp.Network([3, 5, 2], activation="tanh", seed=0, dtype="float64")
    objective = dp.Objective(net, alpha=0.1)
    batch = (net.check_X(X), net.encode_targets(y))
    before, start = objective.value_and_grad(net.theta, batch)
    start = np.abs(start).max()
    result = minimize_lbfgs(objective, batch, max_iter=500, tol=1e-8)
    J, grad = objective.value_and_grad(net.theta, batch)
    assert result.status == 0 and J == pytest.approx(result.loss) and J < before
    assert np.abs(grad).max() < 1e-4 * start  # converged (SciPy also stops on a small relative change of J)
    assert minimize_lbfgs(dp.Objective(dp.Network([3, 5, 2], seed=0, dtype="float64")), batch,
                          max_iter=2).n_iter == 2


def test_a_step_into_overflow_is_stepped_back_from():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(50, 3)) * 20, rng.poisson(3, size=50)  # exp(z) overflows along the way
    net = dp.Network([3, 4, 1], likelihood="poisson", seed=0, dtype="float64")
    objective = dp.Objective(net)
    batch = (net.check_X(X), net.encode_targets(y))
    seen, evaluate = [], objective.value_and_grad

    def recording(theta, b, rng=None):
        J, grad = evaluate(theta, b, rng)
        seen.append(J)
        return J, grad

    objective.value_and_grad = recording
    before = objective.value(net.theta, batch)
    result = minimize_lbfgs(objective, batch, max_iter=50)
    assert not all(np.isfinite(seen))  # the line search did try a point where J overflows
    assert np.all(np.isfinite(net.theta)) and np.isfinite(result.loss) and result.loss < before
