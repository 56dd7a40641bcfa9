import tracemalloc

import numpy as np
import pytest

import deltaprop as dp


def batch_of(net, n, seed=0, likelihood="categorical"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.sizes[0]))
    y = rng.integers(0, net.sizes[-1], n) if likelihood == "categorical" else rng.normal(size=(n, net.sizes[-1]))
    return net.check_X(X), net.encode_targets(y)


@pytest.mark.parametrize("name", list(dp.OPTIMIZERS))
@pytest.mark.parametrize("l2,alpha", [(0.0, 0.0), (0.01, 0.0), (0.0, 0.5)])
def test_the_fused_step_is_the_general_route(name, l2, alpha, backend):
    """value_and_step = value_and_grad, then optimizer.step: same J, same new theta (on
    every array backend present)."""
    net = dp.Network([5, 7, 6, 3], activation="tanh", seed=0, dtype="float64").to(backend)
    other = net.copy()
    opt = dp.OPTIMIZERS[name]()
    fused, general = dp.Objective(net, l2=l2, alpha=alpha), dp.Objective(other, l2=l2, alpha=alpha)
    s1, s2 = opt.init_state(net.theta, net.layer_slices()), opt.init_state(other.theta, other.layer_slices())
    for step in range(3):
        batch = batch_of(net, 8, seed=step)
        J1, g2 = fused.value_and_step(batch, opt, s1, norm=True)
        J2, grad = general.value_and_grad(other.theta, batch)
        assert g2 == pytest.approx(float(grad @ grad), rel=1e-10)
        opt.step(other.theta, grad, s2)
        assert J1 == pytest.approx(J2, rel=1e-12)
        np.testing.assert_allclose(backend.to_host(net.theta), backend.to_host(other.theta), rtol=1e-12, atol=1e-15)


def test_no_update_when_the_loss_is_not_finite():
    net = dp.Network([2, 3, 2], likelihood="gaussian", seed=0)
    opt = dp.SGD()
    before = net.theta.copy()
    X, T = net.check_X([[1.0, 2.0]]), net.encode_targets([[np.float32(3e38), 0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        J, _ = dp.Objective(net).value_and_step((X * 1e30, T), opt, opt.init_state(net.theta))
    assert not np.isfinite(J) and net.theta.tobytes() == before.tobytes()


def test_value_includes_the_penalty_on_weight_rows_only():
    net = dp.Network([4, 5, 3], seed=0, dtype="float64")
    for l in (1, 2):
        net.W[l][-1] = 3.0  # bias rows: not penalized
    batch = batch_of(net, 6)
    J0, _ = dp.Objective(net).value_and_grad(net.theta, batch)
    J1, _ = dp.Objective(net, l2=0.2).value_and_grad(net.theta, batch)
    assert J1 - J0 == pytest.approx(0.1 * sum((W[:-1] ** 2).sum() for W in net.W[1:]), rel=1e-12)
    assert dp.Objective(net, l2=0.2).value(net.theta, batch) == pytest.approx(J1, rel=1e-12)


def test_alpha_is_scikit_learns_penalty_per_batch_row_or_weight():
    net = dp.Network([4, 5, 3], seed=0, dtype="float64")
    X, T = batch_of(net, 6)
    squares = sum((W[:-1] ** 2).sum() for W in net.W[1:])
    J0 = dp.Objective(net).value(net.theta, (X, T))
    assert dp.Objective(net, alpha=0.3).value(net.theta, (X, T)) - J0 == pytest.approx(0.3 / 12 * squares, rel=1e-12)
    w = np.array([1.0, 2.0, 0.5, 1.0, 1.0, 2.5])  # the batch's weight is 8, not 6
    Jw0 = dp.Objective(net).value(net.theta, (X, T, w))
    Jw, _ = dp.Objective(net, alpha=0.3).value_and_grad(net.theta, (X, T, w))
    assert Jw - Jw0 == pytest.approx(0.3 / 16 * squares, rel=1e-12)


def test_integer_weights_are_repeated_rows():
    net = dp.Network([4, 6, 3], activation="tanh", seed=1, dtype="float64")
    X, T = batch_of(net, 5)
    w = np.array([1, 3, 2, 1, 4])
    J, grad = dp.Objective(net).value_and_grad(net.theta, (X, T, w))
    grad = grad.copy()
    Jr, grad_r = dp.Objective(net).value_and_grad(net.theta, (np.repeat(X, w, 0), np.repeat(T, w, 0)))
    assert J == pytest.approx(Jr, rel=1e-12)
    np.testing.assert_allclose(grad, grad_r, rtol=1e-10, atol=1e-14)
    assert net.loss(X, T.argmax(1), sample_weight=w) == pytest.approx(J, rel=1e-12)


def test_theta_argument_is_where_J_is_evaluated():
    net = dp.Network([3, 4, 2], seed=0, dtype="float64")
    batch = batch_of(net, 4)
    objective = dp.Objective(net)
    elsewhere = net.theta * 0.5
    J_there, _ = objective.value_and_grad(elsewhere, batch)
    assert np.array_equal(net.theta, elsewhere)  # copied into the network (as scipy.optimize needs)
    assert J_there == pytest.approx(net.loss(batch[0], batch[1].argmax(1)))


def test_repeated_batches_allocate_nothing():
    """Nothing of a batch's or a layer's size (NumPy's fixed 64 KB ufunc buffer aside)."""
    net = dp.Network([50, 64, 10], seed=0)
    objective = dp.Objective(net, l2=1e-3)
    batch = batch_of(net, 4096)
    objective.value_and_grad(net.theta, batch)
    tracemalloc.start()
    for _ in range(3):
        objective.value_and_grad(net.theta, batch)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4096 * 64 * 4 / 4, f"{peak} bytes"


def test_targets_must_be_encoded():
    net = dp.Network([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match=r"expected targets of shape \(2, 2\) as Network.encode_targets"):
        dp.Objective(net).value_and_grad(net.theta, (np.ones((2, 3)), np.array([0, 1])))


@pytest.mark.parametrize("likelihood,K", [("categorical", 3), ("bernoulli", 2)])
def test_label_smoothing_is_eq_1_on_smoothed_targets_and_passes_gradcheck(likelihood, K):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 4))
    y = rng.integers(0, 3, 10) if likelihood == "categorical" else rng.integers(0, 2, (10, 2))
    net = dp.Network([4, 5, K], activation="tanh", likelihood=likelihood, seed=0, dtype="float64")
    T = net.encode_targets(y)
    soft = 0.9 * T + 0.1 * (1 / K if likelihood == "categorical" else 0.5)
    o = net.forward(X)
    if likelihood == "categorical":
        expected = -np.mean(np.sum(soft * np.log(o), axis=1))
    else:
        expected = -np.mean(np.sum(soft * np.log(o) + (1 - soft) * np.log(1 - o), axis=1))
    J, _ = dp.Objective(net, label_smoothing=0.1).value_and_grad(net.theta, (X, T))
    assert J == pytest.approx(expected, rel=1e-12)
    assert dp.gradcheck(net, X, y, label_smoothing=0.1).passed


def test_label_smoothing_smooths_each_evaluation_once_even_of_a_batch_loaded_once(backend):
    """A single batch is gathered once for the whole run: smoothing must not compound epoch
    after epoch (it once did, in place, on the NumPy backend). With a learning rate too small
    to move the weights, every epoch's J is the smoothed J of the first."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    net = dp.Network([4, 5, 3], seed=0, dtype="float64")
    expected, _ = dp.Objective(net.copy(), label_smoothing=0.2).value_and_grad(net.theta, (X, net.encode_targets(y)))
    state = dp.train(net, X, y, epochs=4, batch_size=None, label_smoothing=0.2, optimizer=dp.SGD(1e-12), seed=0,
                     kernels="numpy", backend=backend.name)
    np.testing.assert_allclose(state.history.loss, expected, rtol=1e-9)


def test_label_smoothing_is_refused_without_classes_and_leaves_validation_on_true_targets():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    with pytest.raises(ValueError, match="gaussian likelihood has no classes to smooth"):
        dp.train(dp.Network([3, 2, 1], likelihood="gaussian"), X, X[:, 0], label_smoothing=0.1)
    y = (X[:, 0] > 0).astype(int)
    net = dp.Network([3, 4, 2], seed=0, dtype="float64")
    state = dp.train(net, X[:30], y[:30], validation=(X[30:], y[30:]), epochs=2, label_smoothing=0.2, seed=0)
    assert state.history.val_loss[-1] == pytest.approx(net.loss(X[30:], y[30:]), rel=1e-12)
    assert state.history.loss[-1] > 0.2 * np.log(2) / 2  # (smoothed targets keep J off 0)
