"""The array backend seam: the core runs on each backend present and agrees with NumPy.

NumPy is the reference; PyTorch's CPU tensors (through array-api-compat) prove on a CPU
that every array of a pass goes through the workspace's backend (a NumPy call on a tensor
with ``out=`` raises, and a stray host array does not mix with tensors); CuPy runs the
same tests on a machine with a GPU. Each test compares in float64 to NumPy's numbers.
"""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.backend import backend_of
from deltaprop.optim.transforms import ClipNorm

CASES = [("categorical", "relu", 3, 1), ("bernoulli", "gelu", 2, 1), ("gaussian", "tanh", 2, 1),
         ("poisson", "softplus", 1, 1), ("sigmoid+squared_error", "elu", 2, 1), ("categorical", "leaky_relu", 3, 3),
         ("sigmoid+binary_cross_entropy", "sigmoid", 2, 1), ("gaussian", "identity", 1, 2)]


def problem(likelihood, K, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if likelihood == "categorical":
        y = rng.integers(0, K, n)
    elif "bernoulli" in likelihood or "binary" in likelihood:
        y = rng.integers(0, 2, (n, K))
    elif likelihood == "poisson":
        y = rng.poisson(1.0, (n, K))
    else:
        y = rng.normal(size=(n, K))
    return X, y, rng.random(n) + 0.5


def pair(backend, likelihood="categorical", activation="relu", K=3, members=1, dtype="float64"):
    net = dp.Network([5, 7, 6, K], activation=activation, likelihood=likelihood, seed=0, dtype=dtype,
                     members=members)
    return net, net.copy().to(backend)


def host(a):
    return backend_of(a).to_host(a)


@pytest.mark.parametrize("likelihood,activation,K,members", CASES)
def test_J_and_its_gradient_are_numpys(backend, likelihood, activation, K, members):
    """Weights, dropout (the same masks), L2 and alpha, label smoothing, ensembles."""
    net, dev = pair(backend, likelihood, activation, K, members)
    X, y, w = problem(likelihood, K)
    T = net.encode_targets(y, len(X))
    smooth = 0.1 if net.likelihood.uniform_target(K) is not None else 0.0
    for batch in [(X, T), (X, T, w)]:
        ref = dp.Objective(net, l2=0.01, alpha=0.1, dropout=0.2, label_smoothing=smooth)
        ours = dp.Objective(dev, l2=0.01, alpha=0.1, dropout=0.2, label_smoothing=smooth)
        J1, g1 = ref.value_and_grad(net.theta, batch, np.random.default_rng(1))
        J2, g2 = ours.value_and_grad(dev.theta, batch, np.random.default_rng(1))
        assert isinstance(J2, float) and J2 == pytest.approx(J1, rel=1e-12)
        assert backend_of(g2) is backend and type(g2) is type(dev.theta)
        np.testing.assert_allclose(host(g2), g1, rtol=1e-10, atol=1e-13)


def test_weights_of_each_member_give_numpys_J_gradient_and_training(backend):
    """An ensemble's column of weights per member (cross-fitting), on the backend."""
    net, dev = pair(backend, members=3)
    X, y, _ = problem("categorical", 3)
    W = np.random.default_rng(2).random((len(X), 3)) * (np.arange(len(X))[:, None] % 3 != np.arange(3))
    batch = (X, net.encode_targets(y, len(X)), W)
    J1, g1 = dp.Objective(net).value_and_grad(net.theta, batch)
    J2, g2 = dp.Objective(dev).value_and_grad(dev.theta, batch)
    assert J2 == pytest.approx(J1, rel=1e-12)
    np.testing.assert_allclose(host(g2), g1, rtol=1e-10, atol=1e-13)
    for n in (net, dev):
        dp.train(n, X, y, sample_weight=W, epochs=2, batch_size=16, seed=0)
    np.testing.assert_allclose(host(dev.theta), net.theta, rtol=1e-9, atol=1e-12)


def test_a_cross_fitted_run_on_the_backend_is_numpys(backend):
    from deltaprop.training.crossfit import train_cross_fit

    X, y, _ = problem("categorical", 3, n=90)
    nets = [dp.Network([5, 7, 3], members=3, seed=0, dtype="float64") for _ in range(2)]
    states = [train_cross_fit(net, X, y, seed=1, epochs=12, batch_size=16, early_stopping=2, backend=b)
              for net, b in zip(nets, ("numpy", backend.name))]
    np.testing.assert_allclose(nets[1].theta, nets[0].theta, rtol=1e-9, atol=1e-12)
    assert states[1].history.member_best_epochs == states[0].history.member_best_epochs


def test_the_gradient_passes_central_differences_on_the_backend(backend):
    net = dp.Network([4, 5, 3], activation="tanh", seed=0, dtype="float64").to(backend)
    X, y, w = problem("categorical", 3, n=12)
    X = X[:, :4]
    obj = dp.Objective(net, l2=0.01)
    batch = (net.check_X(X), net.encode_targets(y), w)
    theta = host(net.theta).copy()
    _, grad = obj.value_and_grad(theta, batch)
    grad, eps = host(grad).copy(), 1e-6
    for i in np.random.default_rng(0).choice(net.n_params, 15, replace=False):
        up, down = theta.copy(), theta.copy()
        up[i] += eps
        down[i] -= eps
        numeric = (obj.value(up, batch) - obj.value(down, batch)) / (2 * eps)
        assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", list(dp.OPTIMIZERS))
def test_every_optimizer_steps_as_on_numpy_fused_or_not(backend, name):
    net, dev = pair(backend)
    X, y, _ = problem("categorical", 3)
    T = net.encode_targets(y)
    opt = dp.OPTIMIZERS[name]()
    clip = [ClipNorm(0.5)]
    for transforms in ([], clip):
        a, b = net.copy(), dev.copy()
        oa, ob = dp.Objective(a, l2=0.01), dp.Objective(b, l2=0.01)
        sa, sb = opt.init_state(a.theta, a.layer_slices()), opt.init_state(b.theta, b.layer_slices())
        for k in range(3):
            batch = (X[k::3], T[k::3])
            ra = oa.step(batch, opt, sa, transforms, norm=True)
            rb = ob.step(batch, opt, sb, transforms, norm=True)
            assert rb.J == pytest.approx(ra.J, rel=1e-12) and rb.sq_norm == pytest.approx(ra.sq_norm, rel=1e-10)
        np.testing.assert_allclose(host(b.theta), a.theta, rtol=1e-10, atol=1e-13)


def test_a_step_brings_one_transfer_to_the_host(backend, monkeypatch):
    """J (with ||grad J||^2 when clipping needs it) comes over in one transfer; with an L2
    penalty or a measured norm, a fused step takes one more, after the update."""
    calls = []
    for method in ("scalars", "to_host"):
        original = getattr(backend, method)
        monkeypatch.setattr(backend, method, lambda *a, _f=original, _m=method: (calls.append(_m), _f(*a))[1])
    net = dp.Network([5, 7, 3], seed=0).to(backend)
    X, y, _ = problem("categorical", 3)
    batch = (net.check_X(X), net.encode_targets(y))
    clip = ClipNorm(1.0)
    for l2, transforms, norm, expected in [(0.0, [], False, 1), (0.0, [clip], False, 1), (0.01, [clip], True, 1),
                                           (0.01, [], False, 2), (0.0, [], True, 2)]:
        obj, opt = dp.Objective(net, l2=l2), dp.Adam()
        state = opt.init_state(net.theta, net.layer_slices())
        obj.step(batch, opt, state)  # (buffers allocated)
        calls.clear()
        obj.step(batch, opt, state, transforms, norm=norm)
        assert calls == ["scalars"] * expected, (l2, transforms, norm)


def test_inference_agrees_and_comes_back_as_numpy(backend):
    for likelihood, activation, K, members in CASES:
        net, dev = pair(backend, likelihood, activation, K, members)
        X, y, w = problem(likelihood, K, n=50)
        o = dev.forward(X)
        assert isinstance(o, np.ndarray)
        np.testing.assert_allclose(o, net.forward(X), rtol=1e-12, atol=1e-14)
        if net.task == "classification":
            np.testing.assert_allclose(dev.predict_proba(X), net.predict_proba(X), rtol=1e-12, atol=1e-14)
            np.testing.assert_array_equal(dev.predict(X), net.predict(X))
        assert dev.loss(X, y, w) == pytest.approx(net.loss(X, y, w), rel=1e-12)
        for g1, g2 in zip(net.gradients(X, y)[1:], dev.gradients(X, y)[1:]):
            assert isinstance(g2, np.ndarray)
            np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("settings", [dict(optimizer="adam", dropout=0.2, l2=1e-3),
                                      dict(optimizer="sgd", clip_norm=0.5, max_norm=2.0, schedule="cosine"),
                                      dict(optimizer="adamw", early_stopping=2, validation=0.25, label_smoothing=0.1,
                                           sample_weight=True)])
def test_train_on_the_backend_is_training_on_numpy(backend, settings):
    X, y, w = problem("categorical", 3, n=120)
    settings = dict(settings)
    if settings.pop("sample_weight", False):
        settings["sample_weight"] = w
    runs = []
    for name in ("numpy", backend.name):
        net = dp.Network([5, 8, 3], seed=0, dtype="float64")
        state = dp.train(net, X, y, epochs=6, batch_size=16, seed=3, kernels="numpy", backend=name, **settings)
        # the network comes back where it was, its weights NumPy's again
        assert net.backend is dp.get_backend("numpy") and isinstance(net.theta, np.ndarray)
        runs.append((net.theta.copy(), state.history))
    (t1, h1), (t2, h2) = runs
    np.testing.assert_allclose(t2, t1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=1e-10)
    np.testing.assert_allclose(h2.val_loss, h1.val_loss, rtol=1e-10)
    assert h2.stop_reason == h1.stop_reason


def test_a_checkpoint_written_on_the_backend_resumes_anywhere(backend, tmp_path):
    X, y, _ = problem("categorical", 3, n=90)
    ck = str(tmp_path / "run.ckpt")
    start = dp.Network([5, 8, 3], seed=0, dtype="float64")
    dp.train(start, X, y, epochs=2, seed=1, backend=backend.name, checkpoint=ck, kernels="numpy")
    theirs, ours = dp.Network([5, 8, 3], seed=0, dtype="float64"), dp.Network([5, 8, 3], seed=0, dtype="float64")
    dp.train(theirs, X, y, epochs=4, seed=1, kernels="numpy")
    dp.train(ours, X, y, epochs=4, seed=1, checkpoint=ck, resume=ck, kernels="numpy")
    np.testing.assert_allclose(ours.theta, theirs.theta, rtol=1e-9, atol=1e-12)


def test_a_model_trained_on_the_backend_saves_and_loads(backend, tmp_path):
    X, y, _ = problem("categorical", 3, n=90)
    model, _ = dp.fit(X, y, hidden=[6], epochs=3, seed=0, backend=backend.name)
    model.save(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(dp.load(tmp_path / "m.safetensors").predict(X), model.predict(X))
    model.network.to(backend)  # a model predicting on the backend: same answers, and it saves too
    np.testing.assert_array_equal(model.predict(X), dp.load(tmp_path / "m.safetensors").predict(X))
    model.save(tmp_path / "again.safetensors")
    np.testing.assert_array_equal(dp.load(tmp_path / "again.safetensors").predict(X), model.predict(X))
    assert dp.gradcheck(model.network, X[:8], y[:8]).passed  # (checked on a host copy)
    told = dp.trace(model.network, X[0], int(y[0]), 0.1)  # (every quantity a host array)
    assert isinstance(told.layers[-1].W, np.ndarray) and backend_of(model.network.theta) is backend


def test_what_a_backend_cannot_do_is_refused_by_name(backend):
    if backend.host:
        pytest.skip("the NumPy backend does all of it")
    import scipy.sparse

    net = dp.Network([5, 4, 3], seed=0)
    with pytest.raises(ValueError, match="kernels: 'numba' runs on the numpy backend only"):
        dp.Objective(net.copy().to(backend), kernels="numba")
    X, y, _ = problem("categorical", 3)
    with pytest.raises(ValueError, match="sparse inputs are read on the numpy backend only"):
        dp.train(net, scipy.sparse.csr_matrix(X), y, epochs=1, backend=backend.name)
    with pytest.raises(ValueError, match="backend: diagnostics runs on the numpy backend only"):
        dp.train(net, X, y, epochs=1, backend=backend.name, diagnostics=True)

    class TwoRanks(dp.Communicator):  # (refused before any collective is called)
        size = 2

    with pytest.raises(ValueError, match="backend: data-parallel training runs on the numpy backend only"):
        dp.Trainer(net, X, y, settings=dp.TrainSettings(backend=backend.name), distributed=TwoRanks())
    net.to("numpy")
    assert net.backend.host  # (each refused run left the network where it was)


def test_backend_names_are_checked_and_a_missing_library_says_how_to_install(monkeypatch):
    with pytest.raises(ValueError, match="backend: unknown name 'jax'.*numpy, cupy, torch"):
        dp.get_backend("jax")
    with pytest.raises(ValueError, match="backend"):
        dp.TrainSettings(backend="gpu")
    from deltaprop.core import backend as seam

    monkeypatch.setattr(seam, "_NEEDS", {**seam._NEEDS, "cupy": ("no_such_module_here",)})
    seam._make.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install 'deltaprop\[gpu\]'"):
            dp.get_backend("cupy")
    finally:
        seam._make.cache_clear()


def test_the_numpy_backend_is_numpy_itself():
    """The reference pays nothing for the seam: its namespace is NumPy, its buffers NumPy's
    arrays, a batch loads straight into them, and a step's scalars are floats at once."""
    be = dp.get_backend()
    assert be.xp is np and be.host and be.name == "numpy"
    ws = dp.Objective(dp.Network([5, 4, 3], seed=0)).workspace(8)
    assert ws.X.base is ws.h[0] and ws.T is ws.targets and ws.w is ws.weights
    assert isinstance(be.deferred(np.float32(2.5)), float) and math.isfinite(be.scalars(1.0)[0])
