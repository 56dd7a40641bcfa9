import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import deltaprop as dp


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_hand_worked_2_2_1_network():
    """One sample through a 2-2-1 sigmoid network, every number computed by hand."""
    net = dp.Network([2, 2, 1], activation="sigmoid", likelihood="bernoulli", dtype="float64")
    # eq. (11): weights of each unit in a column, the bias as the last row
    net.W[1][...] = [[0.1, 0.3], [0.2, 0.4], [0.5, -0.5]]
    net.W[2][...] = [[0.7], [-0.6], [0.05]]
    x, y, mu = [1.0, 2.0], 1.0, 0.5

    z1 = [0.1 * 1 + 0.2 * 2 + 0.5, 0.3 * 1 + 0.4 * 2 - 0.5]  # = [1.0, 0.6]
    h1 = [sigmoid(z1[0]), sigmoid(z1[1])]
    z2 = 0.7 * h1[0] - 0.6 * h1[1] + 0.05
    o = sigmoid(z2)
    d2 = o - y  # eq. (7)-(8) for the Bernoulli/sigmoid pair
    grad_W2 = [h1[0] * d2, h1[1] * d2, 1 * d2]  # eq. (9), the last entry eq. (12)
    d1 = [h1[0] * (1 - h1[0]) * 0.7 * d2, h1[1] * (1 - h1[1]) * -0.6 * d2]
    grad_W1 = [[x[0] * d1[0], x[0] * d1[1]], [x[1] * d1[0], x[1] * d1[1]], [d1[0], d1[1]]]

    assert z1 == pytest.approx([1.0, 0.6], abs=1e-15)
    assert h1[0] == pytest.approx(0.7310585786300049, abs=1e-15)
    assert z2 == pytest.approx(0.7 * 0.7310585786300049 - 0.6 * 0.6456563062257954 + 0.05, abs=1e-15)
    assert o == pytest.approx(0.5434767310649931, abs=1e-12)
    J, G = net.loss([x], [y]), net.gradients([x], [y])
    assert J == pytest.approx(-math.log(o), abs=1e-12)
    np.testing.assert_allclose(G[2][:, 0], grad_W2, atol=1e-12)
    np.testing.assert_allclose(G[2][-1, 0], d2, atol=1e-12)  # eq. (12): bias gradient = delta
    np.testing.assert_allclose(G[1], grad_W1, atol=1e-12)

    # eq. (10): W <- W - mu h delta^T, through the objective's flat gradient and SGD on the flat theta
    W2_before = net.W[2].copy()
    opt = dp.SGD(learning_rate=mu)
    _, grad = dp.Objective(net).value_and_grad(net.theta, (np.array([x]), net.encode_targets([y])))
    opt.step(net.theta, grad, opt.init_state(net.theta))
    np.testing.assert_allclose(net.W[2][:, 0], W2_before[:, 0] - mu * np.array(grad_W2), atol=1e-12)
    assert net.W[2][0, 0] == pytest.approx(0.7 - 0.5 * h1[0] * (o - 1), abs=1e-12)


def test_weights_are_views_into_theta():
    net = dp.Network([4, 5, 3], seed=0)
    assert net.W[0] is None and len(net.W) == 3
    assert net.W[1].shape == (5, 5) and net.W[2].shape == (6, 3)
    objective = dp.Objective(net)
    for l in (1, 2):
        assert np.shares_memory(net.W[l], net.theta)
        assert np.shares_memory(objective.G[l], objective.grad)
    net.theta[:] = 7
    assert np.all(net.W[2] == 7)
    assert net.n_params == 5 * 5 + 6 * 3


def test_initialization():
    net = dp.Network([100, 50, 10], activation="relu", seed=0, dtype="float64")
    assert np.all(net.W[1][-1] == 0) and np.all(net.W[2][-1] == 0)  # bias rows zero
    assert np.abs(net.W[1]).max() <= math.sqrt(6 / 100)  # He uniform for relu
    assert np.abs(net.W[2]).max() <= math.sqrt(6 / 60)  # Glorot uniform for the output
    tanh = dp.Network([100, 50, 10], activation="tanh", seed=0, dtype="float64")
    assert np.abs(tanh.W[1]).max() <= math.sqrt(6 / 150)
    normal = dp.Network([400, 300, 10], init="he_normal", seed=0, dtype="float64")
    assert normal.W[1][:-1].std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    sk = dp.Network([100, 50, 10], init="sklearn", seed=0, dtype="float64")  # biases drawn too
    assert np.abs(sk.W[1]).max() <= math.sqrt(6 / 150) and np.abs(sk.W[1][-1]).min() > 0
    assert sk.W[1][-1].std() == pytest.approx(math.sqrt(6 / 150) / math.sqrt(3), rel=0.3)
    logistic = dp.Network([100, 50, 10], init="sklearn_logistic", seed=0, dtype="float64")
    assert np.abs(logistic.W[1]).max() <= math.sqrt(2 / 150) < np.abs(sk.W[1]).max()
    with pytest.raises(ValueError, match="init: unknown name 'zeros'"):
        dp.Network([2, 2], init="zeros")


def test_same_seed_same_theta_and_no_global_state():
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    a = dp.Network([5, 7, 3], seed=42)
    b = dp.Network([5, 7, 3], seed=np.random.default_rng(42))
    assert a.theta.tobytes() == b.theta.tobytes()
    assert not np.array_equal(a.theta, dp.Network([5, 7, 3], seed=43).theta)
    assert np.array_equal(np.random.get_state()[1], state)


def test_dtypes():
    for dtype in ("float32", "float64"):
        net = dp.Network([3, 4, 2], seed=0, dtype=dtype)
        o = net.forward(np.ones((2, 3)))
        assert net.theta.dtype == dtype and o.dtype == dtype
        assert all(g.dtype == dtype for g in net.gradients(np.ones((2, 3)), [0, 1])[1:])


def test_float32_and_float64_agree():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 6)), rng.integers(0, 3, 16)
    n32 = dp.Network([6, 10, 8, 3], activation="tanh", seed=5, dtype="float32")
    n64 = dp.Network([6, 10, 8, 3], activation="tanh", seed=5, dtype="float64")
    J32, G32 = n32.loss(X, y), n32.gradients(X, y)
    J64, G64 = n64.loss(X, y), n64.gradients(X, y)
    assert J32 == pytest.approx(J64, rel=1e-4)
    for l in (1, 2, 3):
        assert np.abs(G32[l] - G64[l]).max() <= 1e-4 * np.abs(G64[l]).max()


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    n=st.integers(1, 20),
    activation=st.sampled_from(list(dp.ACTIVATIONS)),
)
def test_output_shapes_for_random_architectures(sizes, n, activation):
    net = dp.Network(sizes, activation=activation, likelihood="gaussian", seed=0)
    X = np.random.default_rng(n).normal(size=(n, sizes[0]))
    o = net.forward(X)
    assert o.shape == (n, sizes[-1])
    G = net.gradients(X, np.zeros((n, sizes[-1])))
    assert [g.shape for g in G[1:]] == [w.shape for w in net.W[1:]]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), K=st.integers(2, 5), seed=st.integers(0, 1000))
def test_softmax_outputs_are_distributions(n, K, seed):
    net = dp.Network([3, 5, K], activation="tanh", seed=seed)
    X = np.random.default_rng(seed).normal(scale=100, size=(n, 3))
    o = net.forward(X)
    np.testing.assert_allclose(o.sum(axis=1), 1, rtol=1e-5)
    assert np.all(o >= 0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 10), seed=st.integers(0, 1000),
       likelihood=st.sampled_from(["categorical", "bernoulli", "gaussian", "poisson"]))
def test_gradient_of_mean_loss_is_mean_of_per_sample_gradients(n, seed, likelihood):
    rng = np.random.default_rng(seed)
    net = dp.Network([4, 6, 3], activation="tanh", likelihood=likelihood, seed=seed, dtype="float64")
    X = rng.normal(size=(n, 4))
    y = {"categorical": rng.integers(0, 3, n), "bernoulli": rng.integers(0, 2, (n, 3)),
         "gaussian": rng.normal(size=(n, 3)), "poisson": rng.poisson(1.0, (n, 3))}[likelihood]
    G = net.gradients(X, y)
    for l in (1, 2):
        per_sample = np.mean([net.gradients(X[i:i + 1], y[i:i + 1])[l] for i in range(n)], axis=0)
        np.testing.assert_allclose(G[l], per_sample, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kwargs,match", [
    ({"sizes": [3]}, "sizes: expected at least 2 entries"),
    ({"sizes": [3, 0, 2]}, "sizes: expected positive integer widths"),
    ({"sizes": [3, 2], "activation": "swish"}, "activation: unknown name 'swish'"),
    ({"sizes": [3, 4, 4, 2], "activation": ["relu"]}, "activation: expected one name or 2 names"),
    ({"sizes": [3, 2], "likelihood": "cauchy"}, "likelihood: unknown name"),
    ({"sizes": [3, 2], "dtype": "float16"}, "dtype: expected float32 or float64"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dp.Network(**kwargs)


@pytest.mark.parametrize("X,y,match", [
    (np.ones((2, 4)), [0, 1], "X: expected 3 features"),
    (np.ones((0, 3)), [], "X: expected at least one sample"),
    (np.array([[1, np.nan, 0]]), [0], "X: expected finite values, found nan at row 0, column 1"),
    (np.ones(3), [0], r"X: expected a 2-D array .*reshape\(1, -1\)"),
    (np.ones((2, 3)), [0, 5], "y: expected class indices in 0..1"),
    (np.ones((2, 3)), [0, 1, 1], "y: expected 2 targets"),
    (np.ones((2, 3)), [0, np.inf], "y: expected finite values"),
])
def test_bad_inputs_are_named(X, y, match):
    net = dp.Network([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match=match):
        net.loss(X, y)


def test_predict_gives_indices_and_predict_proba_probabilities():
    X = np.random.default_rng(0).normal(size=(20, 2))
    net = dp.Network([2, 4, 3], seed=0)
    assert np.array_equal(net.predict(X), net.forward(X).argmax(axis=1))
    np.testing.assert_array_equal(net.predict_proba(X), net.forward(X))
    assert (net.predict(X) == net.predict(X)).mean() == 1.0  # comparable with labels, no broadcast error
    binary = dp.Network([2, 4, 1], likelihood="bernoulli", seed=0)
    p = binary.predict_proba(X)
    assert p.shape == (20, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(binary.predict(X), (p[:, 1] > 0.5).astype(int))
    regressor = dp.Network([2, 4, 2], likelihood="gaussian", seed=0)
    np.testing.assert_array_equal(regressor.predict(X), regressor.forward(X))
    with pytest.raises(TypeError, match="not a classifier"):
        regressor.predict_proba(X)


@pytest.mark.parametrize("members", [1, 3])
def test_inference_reads_the_callers_rows_in_place_and_agrees_with_the_copying_path(members):
    """Rows of the network's dtype go to layer 1 where they are (bias added apart); rows
    of another dtype are copied into the workspace chunk by chunk (the augmented product):
    both give the same outputs, over several chunks."""
    rng = np.random.default_rng(0)
    net = dp.Network([6, 16, 8, 3], seed=0, members=members)
    net.theta[:] = rng.normal(0, 0.5, net.n_params)  # (biases too: they start at 0)
    X = rng.normal(size=(5000, 6))
    T = net.encode_targets(rng.integers(0, 3, 5000))
    direct = net.forward(X.astype(np.float32))
    _, copied = net.loss_and_outputs(X, T)  # (float64 rows: converted as they are copied)
    np.testing.assert_allclose(direct, copied, rtol=1e-5, atol=1e-6)


def test_inference_from_many_threads_is_correct():
    """Eight threads predicting with one network at once all get the single-thread answer."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    net = dp.Network([20, 64, 32, 5], activation="tanh", seed=0)
    inputs = [rng.normal(size=(int(n), 20)) for n in rng.integers(1, 300, 400)]
    expected = [net.forward(X) for X in inputs]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(net.forward, inputs))
    wrong = sum(not np.array_equal(g, e) for g, e in zip(got, expected))
    assert wrong == 0, f"{wrong} of {len(inputs)} outputs differ under 8 threads"


def test_repeated_inference_allocates_only_its_output():
    import tracemalloc

    net = dp.Network([50, 64, 32, 10], seed=0)
    X = np.random.default_rng(0).random((2048, 50), dtype=np.float32)
    net.forward(X)
    tracemalloc.start()
    net.forward(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    output = 2048 * 10 * 4
    assert peak < output + 2048 * 51 * 4 / 4, f"{peak} bytes for a {output}-byte output"


def test_nested_use_of_the_buffers_gets_separate_ones():
    from deltaprop.core.engine import WorkspacePool

    pool = WorkspacePool([3, 4, 2], 8, np.float32)
    with pool.lend() as a, pool.lend() as b:
        assert a is not b
    with pool.lend() as c:
        assert c in (a, b)  # returned buffers are reused


def test_pickle_keeps_the_views_into_theta():
    import pickle

    net = dp.Network([3, 4, 2], activation=["gelu"], likelihood="sigmoid+squared_error", seed=0)
    twin = pickle.loads(pickle.dumps(net))
    assert np.array_equal(twin.theta, net.theta) and twin.config() == net.config()
    assert all(np.shares_memory(twin.W[l], twin.theta) for l in (1, 2))
    twin.W[1][0, 0] = 9.0
    assert twin.theta[0] == 9.0
    X = np.ones((2, 3))
    assert np.array_equal(pickle.loads(pickle.dumps(net)).forward(X), net.forward(X))


def test_deepcopy_keeps_the_views_into_theta():
    import copy

    net = dp.Network([3, 4, 2], seed=0)
    twin = copy.deepcopy(net)
    assert np.array_equal(twin.theta, net.theta) and not np.shares_memory(twin.theta, net.theta)
    assert all(np.shares_memory(twin.W[l], twin.theta) for l in (1, 2))


@pytest.mark.parametrize("w,match", [([1, 2], "expected 4 numbers"), ([1, -5, 1, 1], "non-negative"),
                                     ([0, 0, 0, 0], "positive sum"), ([1, np.nan, 1, 1], "finite")])
def test_bad_sample_weights_are_named_at_every_boundary(w, match):
    net = dp.Network([2, 3, 2], seed=0)
    X, y = np.ones((4, 2)), [0, 1, 0, 1]
    for call in (lambda: net.loss(X, y, sample_weight=w), lambda: net.gradients(X, y, sample_weight=w),
                 lambda: dp.gradcheck(net, X, y, sample_weight=w),
                 lambda: dp.train(net, X, y, sample_weight=w, epochs=1)):
        with pytest.raises(ValueError, match=f"sample_weight: .*{match}"):
            call()


@pytest.mark.parametrize("value, dtype, message", [
    (1e39, "float32", "1e\\+39 at row 1, column 2 is beyond the range of float32"),
    (1e308, "float32", "beyond the range of float32"),
    (np.nan, "float64", "expected finite values, found nan at row 1, column 2"),
    (-np.inf, "float64", "found -inf at row 1, column 2"),
])
def test_inputs_must_be_finite_in_the_networks_dtype(value, dtype, message):
    net = dp.Network([3, 2, 2], seed=0, dtype=dtype)
    X = np.ones((3, 3))
    X[1, 2] = value
    with pytest.raises(ValueError, match=message):
        net.forward(X)
    X[:] = 1e308  # a float64 sum of these overflows; the check must not
    if dtype == "float64":
        assert np.all(np.isfinite(net.check_X(X)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_inputs_of_the_networks_own_dtype_are_checked_by_their_row_sums(dtype, value):
    """Input already in the network's dtype is checked by one pass (its row sums): a NaN or an
    infinity anywhere is found and named; finite values whose sum overflows still pass."""
    net = dp.Network([300, 2, 2], seed=0, dtype=dtype)
    X = np.ones((500, 300), dtype=dtype)
    X[417, 123] = value
    with pytest.raises(ValueError, match=f"found {value} at row 417, column 123"):
        net.predict(X)
    X[417, 123] = np.finfo(dtype).max  # (the row's sum overflows to inf)
    X[417, 124] = np.finfo(dtype).max
    assert net.predict(X).shape == (500,)


def test_a_network_larger_than_memory_is_refused_up_front():
    with pytest.raises(ValueError, match=r"sizes: the parameters of a 784-10000000-10000000-10 network would "
                                         r"need 400 TB of memory, more than this machine's"):
        dp.Network([784, 10**7, 10**7, 10])
