import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.likelihoods import likelihood_names

ONE_X = np.array([0.3, -1.2, 0.8])


def _target(lik: str, K: int = 3):
    if lik == "categorical":
        return 2
    if lik == "bernoulli" or lik.endswith("binary_cross_entropy"):
        return [1.0, 0.0, 1.0][:K]
    if lik == "poisson":
        return [2.0, 0.0, 1.0][:K]
    return [0.4, -0.3, 0.9][:K] if not lik.startswith("sigmoid") else [0.4, 0.3, 0.9][:K]


LIKELIHOODS = [n for n in likelihood_names() if not n.startswith(("relu", "leaky_relu", "elu", "gelu"))]


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
def test_every_gradient_entry_matches_finite_differences(likelihood, activation):
    net = dp.Network([3, 4, 5, 3], activation=activation, likelihood=likelihood, seed=1)
    t = dp.trace(net, ONE_X, _target(likelihood), learning_rate=0.1, check=True)
    for layer in t.layers:
        assert layer.n_checked == layer.W.size
        assert layer.max_rel_error < 1e-6, (layer.l, layer.max_rel_error)


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli", "gaussian", "poisson"])
def test_general_rule_and_shortcut_agree(likelihood):
    net = dp.Network([3, 6, 3], activation="tanh", likelihood=likelihood, seed=2)
    X = np.random.default_rng(0).normal(size=(4, 3))
    y = [_target(likelihood)] * 4 if likelihood != "categorical" else [0, 1, 2, 1]
    t = dp.trace(net, X, y, check=False)
    assert t.delta_shortcut is not None
    np.testing.assert_allclose(t.delta_general, t.delta_shortcut, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.layer(2).delta, t.delta_general, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.delta_shortcut, (t.o - t.T) / 4, rtol=0, atol=1e-15)


def test_general_pairs_have_no_shortcut_and_the_general_rule_is_the_engines_delta():
    net = dp.Network([3, 4, 3], activation="tanh", likelihood="sigmoid+squared_error", seed=0)
    t = dp.trace(net, ONE_X, [0.2, 0.5, 0.9], check=False)
    assert t.delta_shortcut is None and t.o_prime is not None
    np.testing.assert_allclose(t.layer(2).delta, t.grad_o * t.o_prime, rtol=1e-12, atol=1e-15)


def test_the_recorded_quantities_satisfy_the_lectures_equations():
    net = dp.Network([3, 5, 4, 2], activation=["tanh", "relu"], likelihood="categorical", seed=3, dtype="float32")
    before = net.theta.copy()
    X = np.random.default_rng(1).normal(size=(5, 3))
    t = dp.trace(net, X, [0, 1, 1, 0, 1], learning_rate=0.3, check=False)
    assert np.array_equal(net.theta, before)  # nothing changed
    for lay in t.layers:
        np.testing.assert_allclose(lay.h_prev[:, -1], 1)  # eq. (11): the trailing 1
        np.testing.assert_allclose(lay.z, lay.h_prev @ lay.W, rtol=1e-12)  # eq. (3)
        np.testing.assert_allclose(lay.G, lay.h_prev.T @ lay.delta, rtol=1e-12, atol=1e-15)  # eq. (9)
        np.testing.assert_allclose(lay.G[-1], lay.delta.sum(axis=0), rtol=1e-12, atol=1e-15)  # eq. (12)
        np.testing.assert_allclose(lay.W_after, lay.W - 0.3 * lay.G, rtol=1e-12)  # eq. (10)
    for l in (1, 2):
        lay, up = t.layer(l), t.layer(l + 1)
        np.testing.assert_allclose(lay.h, dp.get_activation(lay.activation)(lay.z))
        np.testing.assert_allclose(up.h_prev[:, :-1], lay.h)
        np.testing.assert_allclose(lay.delta, lay.phi_prime * (up.delta @ up.W[:-1].T), rtol=1e-12, atol=1e-15)
    assert t.layer(3).h is t.o
    after = net.copy(dtype="float64")
    after.theta[:] = np.concatenate([lay.W_after.ravel() for lay in t.layers])
    assert t.J_after == pytest.approx(after.loss(X, [0, 1, 1, 0, 1]), rel=1e-12)
    assert t.J == pytest.approx(net.copy(dtype="float64").loss(X, [0, 1, 1, 0, 1]), rel=1e-12)


def test_large_networks_check_a_sample_of_entries_per_layer():
    net = dp.Network([40, 60, 10], seed=0)
    t = dp.trace(net, np.ones(40), 3)
    assert all(lay.n_checked == 24 for lay in t.layers)
    assert not np.isnan(t.layer(1).G_numeric[-1, -1])  # the bias row is among them
    assert t.max_rel_error < 1e-6
    assert all(lay.G_numeric is None for lay in dp.trace(net, np.ones(40), 3, check=False).layers)
    assert dp.trace(net, np.ones(40), 3, check=5).layer(2).n_checked == 5


def test_a_model_is_traced_on_raw_rows_with_its_labels(iris):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model, _ = dp.fit(X, labels, hidden=[6], epochs=2, seed=0)
    t = dp.trace(model, X[60], labels[60], learning_rate=0.05)
    np.testing.assert_allclose(t.X, model.transform(X[60:61]).astype(np.float64))
    np.testing.assert_array_equal(t.raw_X, X[60:61])
    assert t.labels == ["setosa", "versicolor", "virginica"]
    assert t.T.tolist() == [[0.0, 1.0, 0.0]]
    assert t.max_rel_error < 1e-6


@pytest.mark.parametrize("bad, match", [({"learning_rate": 0}, "learning_rate"), ({"eps": -1}, "eps"),
                                        ({"check": 0}, "check")])
def test_bad_arguments_are_named(bad, match):
    net = dp.Network([3, 2, 3], seed=0)
    with pytest.raises(ValueError, match=match):
        dp.trace(net, ONE_X, 1, **{"learning_rate": 0.1, **bad})
    with pytest.raises(IndexError, match="layer"):
        dp.trace(net, ONE_X, 1).layer(3)
