"""The two kernel paths: fused Numba kernels agree with the NumPy reference, step by step and
over whole runs; each path is reproducible on its own; the choice of path is validated."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.activations import ACTIVATIONS
from deltaprop.core.kernels import KERNELS, NUMBA_MIN_WORK, Ops, numba_available, resolve_kernels
from conftest import make_targets, need

HIDE_NUMBA = Path(__file__).resolve().parents[1] / "hide_numba"
LIKELIHOODS = ["categorical", "bernoulli", "gaussian", "poisson"]
STATEFUL = ["momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]


@pytest.fixture(scope="module")
def numba():
    return need("numba")


def tolerance(dtype):
    # float32: a few units in the last place of values of order 1 (cancellations included)
    return dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def paths(net):
    return Ops(net, "numpy"), Ops(net, "numba")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_and_its_backprop_agree(numba, name, dtype, rng):
    """phi(z) into a strided view (h without its column of ones), and delta * phi'(z)."""
    net = dp.Network([3, 6, 2], activation=name, dtype=np.dtype(dtype).name)
    ref, fused = paths(net)
    z = (rng.normal(size=(7, 6)) * 4).astype(dtype)
    z[0, :3] = [0.0, 30.0, -30.0]  # the kink, and saturation at both ends
    outs = []
    for ops in (ref, fused):
        h = np.ones((7, 7), dtype)
        ops.phi[1](z, h[:, :-1])
        delta = rng.normal(size=(7, 6)).astype(dtype) if not outs else outs[0][2].copy()
        start = delta.copy()
        if ops.backprop[1] is None:  # the reference: phi' into a buffer, then the product
            dphi = np.empty_like(z)
            ACTIVATIONS[name].derivative(z, h[:, :-1], dphi, np.empty_like(z))
            delta *= dphi
        else:
            ops.backprop[1](z, h[:, :-1], delta)
        outs.append((h, delta, start))
    assert fused.backprop[1] is not None or name == "identity"
    np.testing.assert_allclose(outs[1][0], outs[0][0], **tolerance(dtype))
    np.testing.assert_allclose(outs[1][1], outs[0][1], **tolerance(dtype))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "tanh", "gelu"])
def test_nan_goes_through_both_paths(numba, name):
    """A NaN must reach the loss (divergence is caught there), whatever the path."""
    net = dp.Network([2, 3, 2], activation=name)
    z = np.array([[np.nan, 1.0, -1.0]], np.float32)
    for ops in paths(net):
        out = np.empty_like(z)
        ops.phi[1](z, out)
        assert np.isnan(out[0, 0]) and not np.isnan(out[0, 1:]).any(), ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_loss_and_delta_agree(numba, likelihood, dtype, rng):
    net = dp.Network([3, 4], likelihood=likelihood, dtype=np.dtype(dtype).name)
    z = (rng.normal(size=(9, 4)) * 3).astype(dtype)
    z[0, 0] = 40.0  # a confident answer: the loss is computed from the logits
    T = net.encode_targets(make_targets(likelihood, 9, 4, rng))
    results = []
    for ops in paths(net):
        o, delta, work, nll = np.empty_like(z), np.empty_like(z), np.empty_like(z), np.empty((9, 1), dtype)
        total = ops.loss_and_delta(z, T, o, delta, work, nll, 0.25)
        results.append((total, o, delta, nll))
    (t0, *a), (t1, *b) = results
    assert t1 == pytest.approx(t0, rel=1e-5 if dtype == np.float32 else 1e-12)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y, x, **tolerance(dtype))
    np.testing.assert_allclose(results[0][2], 0.25 * (results[0][1] - T), **tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", STATEFUL)
def test_optimizer_updates_agree_and_flush_subnormals(numba, name, dtype, rng):
    """40 steps, the 32nd of which flushes: the states and parameters of both paths agree,
    and a state value driven into the subnormal range is zero after the flush on both."""
    opt = dp.OPTIMIZERS[name]()
    theta0 = rng.normal(size=50).astype(dtype)
    blocks = [(slice(0, 30), 24), (slice(30, 50), 16)]  # weights first, then the bias row
    runs = []
    for kernels in KERNELS:
        theta, st = theta0.copy(), opt.init_state(theta0, blocks, kernels=kernels)
        assert (st.fused_update is not None) == (kernels == "numba")
        grads = np.random.default_rng(1)
        for t in range(40):
            g = grads.normal(size=50).astype(dtype)
            g[7] = 0.0 if t <= 31 else g[7]
            if t == 30:  # a state value, deep in the subnormal range, waiting for the flush
                for a in st.arrays.values():
                    a[7] = np.finfo(dtype).tiny / 8
            opt.step(theta, g, st)
            if t == 31:
                assert all(a[7] == 0 for a in st.arrays.values()), kernels
        runs.append((theta, st))
    (ta, sa), (tb, sb) = runs
    assert copy.deepcopy(sb).fused_update is sb.fused_update  # a copied state (TrainState.copy) keeps its path
    np.testing.assert_allclose(tb, ta, **tolerance(dtype))
    for k in sa.arrays:
        np.testing.assert_allclose(sb.arrays[k], sa.arrays[k], **tolerance(dtype))


def test_adamw_decays_the_weights_alone_on_both_paths(numba):
    opt = dp.AdamW(learning_rate=0.1, weight_decay=0.5)
    for kernels in KERNELS:
        theta = np.ones(10, np.float32)
        st = opt.init_state(theta, [(slice(0, 10), 6)], kernels=kernels)
        opt.step(theta, np.zeros(10, np.float32), st)  # no gradient: only the decay moves theta
        np.testing.assert_allclose(theta, [0.95] * 6 + [1.0] * 4, rtol=1e-6)


@pytest.mark.parametrize("case", [
    dict(optimizer="adam", activation="relu", likelihood="categorical"),
    dict(optimizer="nesterov", activation="tanh", likelihood="bernoulli", dropout=0.2),
    dict(optimizer="sgd", activation="gelu", likelihood="gaussian", l2=1e-3),
    dict(optimizer="rmsprop", activation="elu", likelihood="poisson", sample_weight=True),
    dict(optimizer="adamw", activation="softplus", likelihood="categorical", clip_norm=1.0),
])
def test_training_runs_agree_in_float64(numba, case, rng):
    """Whole runs (fused per-layer steps, dropout, penalties, weights, clipping): the two paths
    end at the same weights and losses to float64 rounding."""
    case = dict(case)
    net_args = dict(activation=case.pop("activation"), likelihood=case.pop("likelihood"), dtype="float64", seed=0)
    X = rng.normal(size=(120, 5))
    y = make_targets(net_args["likelihood"], 120, 3, rng)
    w = rng.random(120) + 0.5 if case.pop("sample_weight", False) else None
    results = []
    for kernels in KERNELS:
        net = dp.Network([5, 8, 6, 3], **net_args)
        state = dp.train(net, X, y, epochs=3, batch_size=16, seed=1, sample_weight=w, kernels=kernels, **case)
        results.append((net.theta.copy(), state.history.loss))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-9)


@pytest.mark.parametrize("kernels", list(KERNELS))
def test_each_path_resumes_bit_identically(kernels, rng):
    if kernels == "numba":
        need("numba")
    X, y = rng.normal(size=(100, 4)).astype(np.float32), rng.integers(0, 3, 100)

    def net():
        return dp.Network([4, 8, 3], seed=0)

    whole = net()
    dp.train(whole, X, y, epochs=4, batch_size=16, optimizer="adam", dropout=0.1, seed=2, kernels=kernels)
    split = net()
    state = dp.train(split, X, y, epochs=2, batch_size=16, optimizer="adam", dropout=0.1, seed=2, kernels=kernels)
    dp.train(split, X, y, epochs=2, batch_size=16, optimizer="adam", dropout=0.1, seed=2, kernels=kernels,
             state=state)
    assert split.theta.tobytes() == whole.theta.tobytes()


def test_float32_runs_agree_to_float32_rounding(numba, rng):
    """The default dtype: after 30 Adam steps both paths' predictions and weights stay close."""
    X, y = rng.normal(size=(256, 10)).astype(np.float32), rng.integers(0, 4, 256)
    nets = []
    for kernels in KERNELS:
        net = dp.Network([10, 32, 4], seed=0)
        dp.train(net, X, y, epochs=2, batch_size=16, optimizer="adam", seed=0, kernels=kernels)
        nets.append(net)
    np.testing.assert_allclose(nets[1].theta, nets[0].theta, rtol=1e-3, atol=1e-5)


def test_choosing_a_path(monkeypatch):
    assert resolve_kernels("NumPy") == "numpy"
    with pytest.raises(ValueError, match="kernels: unknown name 'fortran'; expected one of numpy, numba"):
        resolve_kernels("fortran")
    with pytest.raises(ValueError, match="kernels: unknown name"):
        dp.TrainSettings(kernels="cuda")
    monkeypatch.setenv("DELTAPROP_KERNELS", "numpy")
    assert resolve_kernels() == "numpy"
    assert dp.Objective(dp.Network([2, 2])).ops.kernels == "numpy"


def run_python(code: str, **env) -> str:
    full = dict(os.environ, **env)
    full.pop("DELTAPROP_KERNELS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_default_path_and_numba_absent():
    """With Numba installed the default is the fused path; without it (hidden here by a
    stand-in that fails to import), NumPy, and asking for numba says what to install."""
    code = ("import deltaprop as dp, numpy as np\n"
            "from deltaprop.core.kernels import resolve_kernels\n"
            "print(resolve_kernels())\n"
            "try:\n    resolve_kernels('numba')\nexcept ImportError as e:\n    print(e)\n")
    hidden = run_python(code, PYTHONPATH=os.pathsep.join([str(HIDE_NUMBA), os.environ.get("PYTHONPATH", "")]))
    assert hidden.splitlines() == ["numpy", "kernels: 'numba' needs Numba, which is not installed; "
                                   "pip install 'deltaprop[fast]', or use kernels='numpy'"]
    if os.environ.get("DELTAPROP_HIDE_NUMBA"):
        return
    need("numba")
    assert run_python(code).splitlines()[0] == "numba"


def test_a_small_run_takes_the_numpy_path_and_never_imports_numba():
    """Loading the kernels costs more than they save on a small problem (rows x parameters
    below NUMBA_MIN_WORK; for prediction, a chunk of rows x parameters); a large one takes
    the fused path by default."""
    code = ("import sys, numpy as np, deltaprop as dp\n"
            "X = np.random.default_rng(0).normal(size=(150, 4))\n"
            "net = dp.Network([4, 100, 3])\n"
            "state = dp.train(net, X, np.arange(150) % 3, epochs=3, seed=0)\n"
            "net.predict(X)\n"
            "print(state.kernels, 'numba' in sys.modules)\n")
    assert run_python(code) == "numpy False"
    assert resolve_kernels(work=NUMBA_MIN_WORK / 2) == "numpy"
    assert resolve_kernels("numba" if numba_available() else "numpy", work=1.0) == \
        ("numba" if numba_available() else "numpy")  # (asked for by name: the size does not matter)
    big = dp.Trainer(dp.Network([100, 1000, 10]), np.zeros((1000, 100)), np.arange(1000) % 10)  # 1.1e8
    assert big.kernels == big.state.kernels == ("numba" if numba_available() else "numpy")
    small = dp.Trainer(dp.Network([100, 1000, 10]), np.zeros((10, 100)), np.arange(10) % 10)
    assert small.kernels == "numpy"


def test_compiled_kernels_are_cached_on_disk(numba, tmp_path):
    """A second process loads every kernel it uses from the cache: no compilation."""
    code = ("import numpy as np, deltaprop as dp\n"
            "from deltaprop.core import fused\n"
            "X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)\n"
            "dp.train(dp.Network([5, 7, 3], activation='tanh'), X, np.arange(64) % 3, epochs=1,\n"
            "         optimizer='adam', batch_size=16, kernels='numba')\n"
            "used = [k for k in (fused.tanh_forward, fused.tanh_backprop, fused.adam_update,\n"
            "                    fused.categorical_loss_and_delta)]\n"
            "print(sum(sum(k.stats.cache_misses.values()) for k in used),\n"
            "      sum(sum(k.stats.cache_hits.values()) for k in used))\n")
    env = dict(NUMBA_CACHE_DIR=str(tmp_path))
    run_python(code, **env)  # fills the cache (or finds it filled)
    misses, hits = map(int, run_python(code, **env).split())
    assert misses == 0 and hits >= 4


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.float32])
def test_batches_are_gathered_alike_on_both_paths(numba, dtype, rng):
    """The fused gather (one pass into the strided input buffer, converting the stored dtype)
    brings exactly the rows of the reference, in the same order, row subsets included."""
    from deltaprop.core.engine import Workspace
    from deltaprop.data.sources import ArraySource

    X = (rng.random((50, 7)) * 200).astype(dtype)
    T = rng.random((50, 3)).astype(np.float32)
    net = dp.Network([7, 4, 3])
    batches = []
    for ops in paths(net):
        source = ArraySource(X, T, None, 16, np.float32, rows=np.arange(3, 47))
        order = source.order(np.random.default_rng(0))
        ws = Workspace(net.sizes, 16, np.float32, ops)
        seen = []
        for k in range(source.steps(order)):
            b = source.fill(ws, order, k)
            seen.append(ws.h[0][:b].copy())
        batches.append(np.concatenate(seen))
    assert batches[1].tobytes() == batches[0].tobytes()
    assert np.all(batches[0][:, -1] == 1)  # the column of ones untouched
    np.testing.assert_array_equal(np.sort(batches[0][:, 0]), np.sort(X[3:47, 0].astype(np.float32)))


def test_the_fused_path_multiplies_delta_by_phi_prime_in_its_kernel(numba, rng):
    """On the numba path backpropagation goes through the fused kernel of each hidden layer
    (not the reference's phi' buffer and product)."""
    net = dp.Network([4, 6, 5, 3], activation=["tanh", "relu"], seed=0)
    objective = dp.Objective(net, kernels="numba")
    calls = []
    for l in (1, 2):
        kernel = objective.ops.backprop[l]
        objective.ops.backprop[l] = lambda z, h, d, l=l, kernel=kernel: (calls.append(l), kernel(z, h, d))
    X, y = rng.normal(size=(8, 4)).astype(np.float32), np.arange(8) % 3
    _, grad = objective.value_and_grad(net.theta, (X, net.encode_targets(y)))
    assert calls == [2, 1]
    reference = dp.Objective(net, kernels="numpy").value_and_grad(net.theta, (X, net.encode_targets(y)))[1]
    np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-6)


def test_custom_activations_and_optimizers_take_the_numpy_route(numba):
    """A fused kernel stands for the registered object, not for a custom one reusing its name."""
    custom = dp.Activation("relu", lambda z, out: np.copyto(out, z), lambda z, h, out, work: out.fill(1),
                           "he_uniform")
    ops = Ops(dp.Network([3, 4, 2], activation=custom), "numba")
    assert ops.phi[1] is custom.forward and ops.backprop[1] is None
    assert Ops(dp.Network([3, 4, 2], activation="relu"), "numba").backprop[1] is not None

    class MyAdam(dp.Adam):
        def _update(self, theta, grad, lr, t, arrays, work, n_weights):
            theta -= grad

    theta = np.zeros(4, np.float32)
    assert MyAdam().init_state(theta, kernels="numba").fused_update is None
    assert dp.Adam().init_state(theta, kernels="numba").fused_update is not None
