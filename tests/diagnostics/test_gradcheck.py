import numpy as np
import pytest

import deltaprop as dp
from conftest import KINKED, LIKELIHOOD_NAMES, make_targets, min_abs_hidden_z

DEPTHS = {0: [3, 2], 1: [3, 4, 2], 2: [3, 4, 5, 2], 3: [3, 5, 4, 3, 2]}


def well_posed_case(activation, likelihood, sizes):
    """A float64 network and a batch, with every hidden z away from a kink."""
    for seed in range(50):
        rng = np.random.default_rng(seed)
        net = dp.Network(sizes, activation=activation, likelihood=likelihood, seed=seed, dtype="float64")
        X = rng.normal(size=(5, sizes[0]))
        if activation not in KINKED or min_abs_hidden_z(net, X) > 1e-2:
            return net, X, make_targets(likelihood, 5, sizes[-1], rng)
    raise AssertionError("no kink-free case found")


# with no hidden layer the activation plays no part: that depth is run once
CASES = [(a, d) for a in dp.ACTIVATIONS for d in sorted(DEPTHS) if d > 0 or a == "identity"]


@pytest.mark.parametrize("likelihood", LIKELIHOOD_NAMES)
@pytest.mark.parametrize("activation,depth", CASES)
def test_backprop_matches_finite_differences(activation, likelihood, depth):
    net, X, y = well_posed_case(activation, likelihood, DEPTHS[depth])
    result = dp.gradcheck(net, X, y)
    assert result.passed, result.report()
    assert result.max_error < 1e-6
    assert set(result.errors) == set(range(1, depth + 2))


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    net, X, y = well_posed_case("tanh", "categorical", [3, 4, 2])
    real = dp.Objective.value_and_grad

    def broken(self, theta, batch, rng=None):
        J, grad = real(self, theta, batch, rng)
        self.G[1][0, 0] *= 1.01  # a 1% error in one weight of layer 1
        return J, grad

    monkeypatch.setattr(dp.Objective, "value_and_grad", broken)
    result = dp.gradcheck(net, X, y)
    assert not result.passed
    assert result.errors[1] > 1e-3 and result.errors[2] < 1e-6
    assert "FAILED" in result.report()


def test_gradcheck_works_on_float32_networks_in_float64():
    net = dp.Network([3, 4, 2], activation="tanh", seed=0)  # float32
    X = np.random.default_rng(0).normal(size=(4, 3))
    result = dp.gradcheck(net, X, [0, 1, 1, 0])
    assert result.passed and net.theta.dtype == np.float32


def test_gradcheck_subsample():
    net = dp.Network([6, 8, 3], activation="sigmoid", seed=1, dtype="float64")
    X = np.random.default_rng(1).normal(size=(4, 6))
    result = dp.gradcheck(net, X, [0, 1, 2, 0], max_per_layer=5)
    assert result.n_checked == {1: 5, 2: 5} and result.passed


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli", "gaussian", "sigmoid+binary_cross_entropy"])
def test_gradcheck_with_penalty_and_sample_weights(likelihood):
    """The objective's full gradient: weighted mean NLL plus the L2 penalty."""
    net, X, y = well_posed_case("tanh", likelihood, [3, 5, 4, 3])
    w = np.random.default_rng(3).uniform(0.1, 3.0, size=len(X))
    result = dp.gradcheck(net, X, y, sample_weight=w, l2=0.7)
    assert result.passed, result.report()
    result = dp.gradcheck(net, X, y, sample_weight=w, alpha=0.9)  # scikit-learn's penalty, as the estimators use
    assert result.passed, result.report()


@pytest.mark.parametrize("option, value", [("eps", 0.0), ("eps", float("nan")), ("tolerance", -1.0),
                                           ("max_per_layer", 0)])
def test_settings_are_validated(option, value):
    net = dp.Network([2, 3, 2], seed=0)
    with pytest.raises(ValueError, match=f"{option}: expected"):
        dp.gradcheck(net, np.ones((2, 2)), np.array([0, 1]), **{option: value})


def test_weights_whose_steps_cross_a_relu_kink_are_left_out():
    net = dp.Network([2, 3, 2], activation="relu", seed=0, dtype="float64")
    net.W[1][:, 0] = [0.5, -0.5, 1e-4]  # unit 0: z = 1e-4, within the steps (+-2e-3) of the kink
    result = dp.gradcheck(net, np.array([[1.0, 1.0]]), [1])
    assert result.passed and result.n_checked == {1: 6, 2: 8}  # the 3 weights into unit 0 are not checked
    t = dp.trace(net, [1.0, 1.0], 1, check=True)
    assert np.isnan(t.layer(1).G_numeric[:, 0]).all() and t.layer(1).n_checked == 6 and t.max_rel_error < 1e-6


def test_a_confidently_right_output_is_checked_against_the_rounding_in_J():
    net = dp.Network([4, 16, 3], activation="tanh", seed=0, dtype="float64")
    net.W[2][-1] = [0.0, 0.0, 16.0]  # J about 2e-7: every gradient entry is tiny
    x = np.random.default_rng(0).normal(size=(1, 4))
    assert dp.gradcheck(net, x, [2]).passed
    t = dp.trace(net, x[0], 2, check=True)
    assert t.J < 1e-6 and t.max_rel_error < 1e-6
