
import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.kernels import numba_available

# every formula is checked on each update path there is: the NumPy reference always, and the
# fused Numba kernels where Numba is installed (the default path then, which would hide the other)
PATHS = ["numpy"] + (["numba"] if numba_available() else [])
THETA0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.1, -0.3, 2.0]), np.array([-0.2, 0.4, 1.0]), np.array([0.3, 0.0, -1.0])]


def run(opt, layers=None, kernels="numpy"):
    theta = THETA0.copy()
    state = opt.init_state(theta, layers, kernels=kernels)
    assert (state.fused_update is not None) == (kernels == "numba" and bool(state.arrays)), "not the path asked for"
    out = []
    for g in GRADS:
        opt.step(theta, g.copy(), state)
        out.append(theta.copy())
    return out


def expected(update):
    """Apply a reference update rule written out in plain arithmetic."""
    theta, state, out = THETA0.copy(), {}, []
    for t, g in enumerate(GRADS, start=1):
        theta = update(theta, g, t, state)
        out.append(theta.copy())
    return out


def check(opt, update, layers=None):
    for kernels in PATHS:
        for got, want in zip(run(opt, layers, kernels), expected(update)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=kernels)


def test_sgd_is_eq_10():
    check(dp.SGD(learning_rate=0.1), lambda th, g, t, s: th - 0.1 * g)


def test_momentum():
    def upd(th, g, t, s):
        s["v"] = 0.9 * s.get("v", 0) - 0.05 * g
        return th + s["v"]
    check(dp.Momentum(learning_rate=0.05, momentum=0.9), upd)


def test_nesterov():
    def upd(th, g, t, s):
        s["v"] = 0.8 * s.get("v", 0) - 0.05 * g
        return th + 0.8 * s["v"] - 0.05 * g
    check(dp.Nesterov(learning_rate=0.05, momentum=0.8), upd)


def test_adagrad():
    def upd(th, g, t, s):
        s["G"] = s.get("G", 0) + g * g
        return th - 0.1 * g / (np.sqrt(s["G"]) + 1e-8)
    check(dp.AdaGrad(learning_rate=0.1), upd)


def test_rmsprop():
    def upd(th, g, t, s):
        s["s"] = 0.9 * s.get("s", 0) + 0.1 * g * g
        return th - 0.01 * g / (np.sqrt(s["s"]) + 1e-8)
    check(dp.RMSProp(learning_rate=0.01, rho=0.9), upd)


def adam_update(lr, b1=0.9, b2=0.999, eps=1e-8):
    def upd(th, g, t, s):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        m_hat, v_hat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
        return th - lr * m_hat / (np.sqrt(v_hat) + eps)
    return upd


@pytest.mark.parametrize("kernels", PATHS)
def test_adam_first_step_is_lr_times_sign(kernels):
    theta = run(dp.Adam(learning_rate=0.01), kernels=kernels)[0]
    np.testing.assert_allclose(theta, THETA0 - 0.01 * np.sign(GRADS[0]), rtol=1e-6)


def test_adam():
    check(dp.Adam(learning_rate=0.01), adam_update(0.01))
    # block by block (as the training loop does, layer by layer) is the same update
    check(dp.Adam(learning_rate=0.01), adam_update(0.01), layers=[(slice(0, 1), 1), (slice(1, 3), 2)])


@pytest.mark.parametrize("kernels", PATHS)
def test_adamw_decays_weights_only(kernels):
    theta = THETA0.copy()
    layers = [(slice(0, 3), 2)]  # one layer: two weights, then a bias
    opt = dp.AdamW(learning_rate=0.01, weight_decay=0.1)
    adam = adam_update(0.01)

    def upd(th, g, t, s):
        th = th.copy()
        th[:2] *= 1 - 0.01 * 0.1
        return adam(th, g, t, s)

    state = opt.init_state(theta, layers, kernels=kernels)
    for got_g, want in zip(GRADS, expected(upd)):
        opt.step(theta, got_g.copy(), state)
        np.testing.assert_allclose(theta, want, rtol=1e-12)


@pytest.mark.parametrize("name", list(dp.OPTIMIZERS))
def test_state_roundtrip_and_no_allocation(name):
    import tracemalloc

    opt = dp.OPTIMIZERS[name]()
    theta = np.ones(10_000, dtype=np.float32)
    state = opt.init_state(theta, [(slice(0, 6000), 5000), (slice(6000, 10_000), 3000)])
    g = np.full_like(theta, 0.1)
    opt.step(theta, g.copy(), state)
    tracemalloc.start()
    opt.step(theta, g, state)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 1000, f"{name} allocated {peak} bytes in a step"
    scalars, arrays = state.state_dict()
    other = opt.init_state(np.ones_like(theta))
    other.load_state_dict(scalars, arrays)
    assert other.t == state.t == 2
    for k, v in arrays.items():
        assert np.array_equal(other.arrays[k], v)


@pytest.mark.parametrize("name", list(dp.OPTIMIZERS))
def test_a_step_leaves_the_optimizer_settings_unchanged(name):
    """Settings and state are apart: stepping changes the state object only."""
    opt = dp.OPTIMIZERS[name]()
    before = repr(opt), dict(vars(opt))
    theta = np.ones(6)
    state = opt.init_state(theta)
    state.learning_rate = 0.5  # what a schedule does: on the state, not on the settings
    opt.step(theta, np.full(6, 0.1), state)
    assert (repr(opt), dict(vars(opt))) == before and state.t == 1
    assert opt.init_state(theta).t == 0


def test_unknown_optimizer_and_bad_hyperparameters():
    with pytest.raises(ValueError, match="optimizer: unknown name 'lbfgs'.*adam"):
        dp.TrainSettings(optimizer="lbfgs")
    with pytest.raises(ValueError, match="learning_rate: expected a positive number"):
        dp.SGD(learning_rate=-1)
    with pytest.raises(ValueError, match="beta1"):
        dp.Adam(beta1=1.0)


def test_sgd_with_a_vanishing_learning_rate_leaves_the_weights_and_reports_the_gradient():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = (X[:, 0] > 0).astype(int)
    net = dp.Network([3, 4, 2], seed=0)
    before = net.theta.copy()
    h = dp.train(net, X, y, optimizer=dp.SGD(learning_rate=1e-200), epochs=2, seed=0).history
    assert np.array_equal(net.theta, before) and all(np.isfinite(h.grad_norm)) and h.grad_norm[-1] > 0
