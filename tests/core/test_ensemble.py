"""Ensembles: k networks trained together in one pass per layer equal k separate networks."""

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.kernels import numba_available
from deltaprop.model import load

SIZES = [5, 7, 6]
KERNELS = ["numpy"] + (["numba"] if numba_available() else [])


def targets(likelihood, rng, n):
    return {"categorical": lambda: rng.integers(0, 3, n), "bernoulli": lambda: rng.integers(0, 2, (n, 2)),
            "gaussian": lambda: rng.normal(size=(n, 2)), "poisson": lambda: rng.poisson(2.0, n)}[likelihood]()


def members_of(ens):
    """Each member of an ensemble as a network of its own, with the same weights."""
    out = []
    for m in range(ens.members):
        net = dp.Network(ens.sizes, activation=ens.activation_names, likelihood=ens.likelihood.name,
                         dtype=ens.dtype)
        for l in range(1, ens.n_layers + 1):
            d = ens.sizes[l]
            net.W[l][...] = ens.W[l][:, m * d:(m + 1) * d]
        out.append(net)
    return out


@pytest.mark.parametrize("likelihood,K", [("categorical", 3), ("bernoulli", 2), ("gaussian", 2), ("poisson", 1)])
@pytest.mark.parametrize("weighted", [False, True])
def test_an_ensemble_is_its_members_side_by_side(likelihood, K, weighted):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), targets(likelihood, rng, 40)
    w = rng.uniform(0.5, 2.0, 40) if weighted else None
    ens = dp.Network(SIZES + [K], activation="tanh", likelihood=likelihood, seed=1, dtype="float64", members=3)
    nets = members_of(ens)
    # the output is the members' mean output (class probabilities averaged), J the mean of their J
    np.testing.assert_allclose(ens.forward(X), np.mean([n.forward(X) for n in nets], axis=0), rtol=1e-12)
    np.testing.assert_allclose(ens.loss(X, y, w), np.mean([n.loss(X, y, w) for n in nets]), rtol=1e-12)
    G = ens.gradients(X, y, w)
    for m, net in enumerate(nets):
        Gm = net.gradients(X, y, w)
        for l in range(1, ens.n_layers + 1):
            d = ens.sizes[l]
            np.testing.assert_allclose(G[l][:, m * d:(m + 1) * d], Gm[l] / 3, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("likelihood,K", [("categorical", 3), ("bernoulli", 2), ("gaussian", 2), ("poisson", 1)])
def test_each_member_with_weights_of_its_own_is_its_network_with_those_weights(likelihood, K):
    # weights (n, k): member m's J is its own weighted mean, the ensemble's the mean of those;
    # a member whose weights are zero on some rows never learns from them (cross-fitting)
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(40, 5)), targets(likelihood, rng, 40)
    W = rng.uniform(0.5, 2.0, (40, 3)) * (rng.random((40, 3)) < 0.7)
    ens = dp.Network(SIZES + [K], activation="tanh", likelihood=likelihood, seed=1, dtype="float64", members=3)
    nets = members_of(ens)
    np.testing.assert_allclose(dp.Objective(ens).value_and_grad(ens.theta, (ens.check_X(X), ens.encode_targets(y), W))[0],
                               np.mean([n.loss(X, y, W[:, m]) for m, n in enumerate(nets)]), rtol=1e-12)
    T = ens.encode_targets(y)
    _, g = dp.Objective(ens).value_and_grad(ens.theta, (ens.check_X(X), T, W))
    G = dp.core.engine.views(g.copy(), ens.shapes)
    for m, net in enumerate(nets):
        Gm = net.gradients(X, y, W[:, m])
        for l in range(1, ens.n_layers + 1):
            d = ens.sizes[l]
            np.testing.assert_allclose(G[l][:, m * d:(m + 1) * d], Gm[l] / 3, rtol=1e-10, atol=1e-14)


def test_weights_of_each_member_pass_gradcheck_and_are_checked():
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(12, 5)), rng.integers(0, 3, 12)
    ens = dp.Network(SIZES + [3], activation=["gelu", "tanh"], seed=2, members=2)
    W = rng.uniform(0.0, 2.0, (12, 2))
    assert dp.gradcheck(ens, X, y, sample_weight=W).passed
    with pytest.raises(ValueError, match=r"expected 12 numbers \(one per row of X\), or 12 rows of 2"):
        dp.train(ens, X, y, sample_weight=np.ones((12, 3)), epochs=1)
    W[:, 1] = 0
    with pytest.raises(ValueError, match="every weight of member 1 is zero"):
        dp.train(ens, X, y, sample_weight=W, epochs=1)
    with pytest.raises(ValueError, match="expected 12 numbers"):  # (a single network: one column)
        dp.train(dp.Network(SIZES + [3]), X, y, sample_weight=np.ones((12, 1)), epochs=1)


@pytest.mark.parametrize("kernels", KERNELS)
def test_training_together_with_weights_of_each_member_is_training_each_alone(kernels):
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(90, 5)), rng.integers(0, 3, 90)
    W = (rng.random((90, 3)) < 0.75).astype(float)
    ens = dp.Network(SIZES + [3], activation="relu", seed=4, dtype="float64", members=3)
    nets = members_of(ens)
    opt = dict(optimizer=dp.Adam(1e-2, eps=1e-300), epochs=4, batch_size=16, seed=5, kernels=kernels)
    dp.train(ens, X, y, sample_weight=W, **opt)
    for m, net in enumerate(nets):
        dp.train(net, X, y, sample_weight=W[:, m], **opt)
        for l in range(1, ens.n_layers + 1):
            d = ens.sizes[l]
            np.testing.assert_allclose(ens.W[l][:, m * d:(m + 1) * d], net.W[l], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("likelihood,K", [("categorical", 3), ("bernoulli", 1), ("gaussian", 2)])
def test_an_ensemble_passes_gradcheck(likelihood, K):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 5)), targets(likelihood, rng, 12)
    y = y[:, :K] if y.ndim == 2 else y
    ens = dp.Network(SIZES + [K], activation=["gelu", "tanh"], likelihood=likelihood, seed=2, members=4)
    result = dp.gradcheck(ens, X, y)
    assert result.passed, result


def test_the_members_of_an_ensemble_start_apart_with_their_own_fan_out():
    ens = dp.Network([50, 40, 3], seed=0, members=4)
    first = [ens.W[1][:, m * 40:(m + 1) * 40] for m in range(4)]
    assert not np.allclose(first[0], first[1])
    # He's bound for a member's own 40 units, not for the 160 of all four together
    assert np.abs(ens.W[1][:-1]).max() <= np.sqrt(6 / 50) + 1e-6
    assert np.abs(ens.W[2][:-1]).max() > np.sqrt(6 / (40 + 3)) * 0.8


@pytest.mark.parametrize("kernels", KERNELS)
def test_training_together_is_training_each_member_alone(kernels):
    # Adam's step is unchanged by a gradient's scale (the ensemble's J is the mean, each member
    # gets 1/k of its gradient) but for eps: with eps tiny, the same steps to rounding
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(90, 5)), rng.integers(0, 3, 90)
    ens = dp.Network(SIZES + [3], activation="relu", seed=4, dtype="float64", members=3)
    nets = members_of(ens)
    opt = dict(optimizer=dp.Adam(1e-2, eps=1e-300), epochs=4, batch_size=16, seed=5, kernels=kernels)
    dp.train(ens, X, y, **opt)
    for m, net in enumerate(nets):
        dp.train(net, X, y, **opt)
        for l in range(1, ens.n_layers + 1):
            d = ens.sizes[l]
            np.testing.assert_allclose(ens.W[l][:, m * d:(m + 1) * d], net.W[l], rtol=1e-7, atol=1e-9)


def test_an_ensemble_with_dropout_gives_the_same_bits_for_the_same_seed():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(100, 5)), rng.normal(size=100)
    runs = [dp.fit(X, y, hidden=(8, 8), members=5, dropout=0.2, epochs=3, seed=7)[0] for _ in range(2)]
    assert runs[0].network.theta.tobytes() == runs[1].network.theta.tobytes()
    assert runs[0].network.members == 5


def test_an_ensemble_model_round_trips_through_its_file(tmp_path):
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(80, 4)), rng.choice(["a", "b", "c"], 80)
    model, _ = dp.fit(X, y, hidden=(6,), members=3, epochs=2, seed=0)
    model.save(tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors")
    assert again.network.members == 3
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert list(again.predict(X)) == list(model.predict(X))


def test_a_file_whose_members_do_not_fit_its_weights_is_refused(tmp_path):
    import json

    from deltaprop.io.files import ModelFileError, atomic_safetensors, read_safetensors

    model = dp.Model(dp.Network([3, 4, 2], likelihood="gaussian", seed=0, members=2))
    model.save(tmp_path / "m.safetensors")
    tensors, header = read_safetensors(tmp_path / "m.safetensors")
    for members, message in ((3, "W.1 has shape"), (0, "members must be a positive integer")):
        config = json.loads(header["config"])
        config["members"] = members
        # (signed again, as a deliberate forger would: what is behind the checksum is still checked)
        atomic_safetensors(tmp_path / "bad.safetensors", tensors, {**header, "config": json.dumps(config)})
        with pytest.raises(ModelFileError, match=message):
            load(tmp_path / "bad.safetensors")


def test_trace_explains_one_network_and_says_so_for_an_ensemble():
    ens = dp.Network([3, 4, 2], seed=0, members=2)
    with pytest.raises(ValueError, match="ensemble of 2 members"):
        dp.trace(ens, np.zeros((2, 3)), [0, 1])


def test_a_workspace_keeps_its_batched_views_for_the_weights_they_were_made_from():
    """The engine keeps an ensemble's per-member views in the workspace; passes with other
    weights (another network on the same buffers) must not read the first one's."""
    from deltaprop.core.engine import Workspace, forward

    rng = np.random.default_rng(10)
    X = rng.normal(size=(20, 5))
    nets = [dp.Network(SIZES + [3], activation="tanh", seed=s, dtype="float64", members=3) for s in (1, 2)]
    ws = Workspace(nets[0].sizes, 32, np.float64, members=3)
    for net in nets + nets:  # each in turn, twice, on the one workspace
        ws.X[:20] = X
        forward(net, ws, 20)
        np.testing.assert_allclose(ws.z[net.n_layers][:20], logits_member_by_member(net, X), rtol=1e-12)
    assert len(ws.member_views) > 0


def logits_member_by_member(net, X):
    """z[L] of each member, side by side, computed member by member with NumPy alone."""
    out = []
    for m, single in enumerate(members_of(net)):
        h = X
        for l in range(1, single.n_layers + 1):
            z = h @ single.W[l][:-1] + single.W[l][-1]
            h = np.tanh(z) if l < single.n_layers else z
        out.append(h)
    return np.hstack(out)


def test_a_workspace_keeps_a_bounded_number_of_batched_views():
    ens = dp.Network(SIZES + [3], seed=0, members=3)
    X = np.random.default_rng(0).normal(size=(100, 5))
    for n in range(1, 100):  # (inference meets any number of rows)
        ens.predict(X[:n])
    with ens._pool.lend() as ws:
        assert 0 < len(ws.member_views) <= 64
