import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import deltaprop as dp
from deltaprop import get_likelihood
from deltaprop.core.likelihoods import likelihood_names


def run(lik, z, T, rows=False):
    o, delta, work, nll = np.empty_like(z), np.empty_like(z), np.empty_like(z), np.empty((len(z), 1))
    lik.loss_and_delta(z, T, o, delta, work, nll)
    return (nll[:, 0] if rows else nll.sum()), o, delta


@pytest.mark.parametrize("name", ["categorical", "bernoulli", "gaussian", "poisson", "sigmoid+squared_error",
                                  "sigmoid+binary_cross_entropy"])
def test_row_losses_are_each_rows_own(name, rng):
    """nll[i] is -log p(y_i|x_i) of row i alone: the loss of a one-row batch."""
    lik = get_likelihood(name)
    z = rng.normal(size=(6, 3))
    T = {"categorical": np.eye(3)[rng.integers(0, 3, 6)], "poisson": rng.poisson(2.0, (6, 3)).astype(float),
         "gaussian": rng.normal(size=(6, 3))}.get(name, rng.integers(0, 2, (6, 3)).astype(float))
    rows, _, _ = run(lik, z, T, rows=True)
    singles = [run(lik, z[i:i + 1], T[i:i + 1])[0] for i in range(6)]
    np.testing.assert_allclose(rows, singles, rtol=1e-12)
    assert len(set(np.round(rows, 10))) > 1


def test_canonical_losses_match_direct_formulas(rng):
    z = rng.normal(size=(5, 3))
    y = rng.integers(0, 3, 5)
    T = get_likelihood("categorical").encode_targets(y, 3, np.float64)
    total, o, delta = run(get_likelihood("categorical"), z, T)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert total == pytest.approx(-np.log(p[np.arange(5), y]).sum(), rel=1e-12)
    np.testing.assert_allclose(delta, p - T, atol=1e-15)

    Tb = rng.integers(0, 2, (5, 3)).astype(float)
    total, o, delta = run(get_likelihood("bernoulli"), z, Tb)
    s = 1 / (1 + np.exp(-z))
    assert total == pytest.approx(-(Tb * np.log(s) + (1 - Tb) * np.log(1 - s)).sum(), rel=1e-12)
    np.testing.assert_allclose(delta, s - Tb, atol=1e-15)

    Tp = rng.poisson(3, (5, 3)).astype(float)
    total, o, delta = run(get_likelihood("poisson"), z, Tp)
    assert total == pytest.approx((np.exp(z) - Tp * z).sum(), rel=1e-12)

    Tg = rng.normal(size=(5, 3))
    total, o, delta = run(get_likelihood("gaussian"), z, Tg)
    assert total == pytest.approx(0.5 * ((z - Tg) ** 2).sum(), rel=1e-12)


def test_general_route_sigmoid_bce_equals_bernoulli(rng):
    z = rng.normal(size=(6, 2))
    T = rng.integers(0, 2, (6, 2)).astype(float)
    a = run(get_likelihood("bernoulli"), z, T)
    b = run(get_likelihood("sigmoid+binary_cross_entropy"), z, T)
    assert a[0] == pytest.approx(b[0], rel=1e-10)
    np.testing.assert_allclose(a[2], b[2], atol=1e-12)  # eq. (8) reduces to o - y


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.integers(2, 6), st.sampled_from([np.float32, np.float64]))
def test_softmax_rows_sum_to_one_and_losses_finite_at_extreme_logits(n, K, dtype):
    rng = np.random.default_rng(n * 31 + K)
    z = (rng.choice([-1000.0, 1000.0, 0.0], size=(n, K))).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("categorical", "bernoulli", "gaussian"):
            lik = get_likelihood(name)
            y = rng.integers(0, K, n) if name == "categorical" else rng.integers(0, 2, (n, K))
            T = lik.encode_targets(y, K, dtype)
            total, o, delta = run(lik, z, T)
            assert np.isfinite(total) and np.all(np.isfinite(delta))
            if name == "categorical":
                np.testing.assert_allclose(o.sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("name,y,match", [
    ("categorical", [0, 3], r"class indices in 0\.\.2 .* found values from 0 to 3"),
    ("categorical", [0, -1], "class indices"),
    ("categorical", [0.5, 1], "integer class indices"),
    ("bernoulli", [0, 2], "0/1 targets"),
    ("poisson", [1, -1], "non-negative counts"),
    ("gaussian", [1.0, np.nan], "finite"),
    ("gaussian", ["a", "b"], "numeric"),
])
def test_bad_targets_are_named(name, y, match):
    K = 3 if name == "categorical" else 1
    with pytest.raises((ValueError, TypeError), match=match):
        get_likelihood(name).encode_targets(np.array(y), K, np.float64)


def test_one_hot_targets_accepted_and_wrong_shapes_rejected():
    lik = get_likelihood("categorical")
    T = lik.encode_targets(np.eye(3)[[0, 2, 1]], 3, np.float32)
    assert T.dtype == np.float32 and T.shape == (3, 3)
    with pytest.raises(ValueError, match=r"expected shape \(N, 2\)"):
        get_likelihood("gaussian").encode_targets(np.zeros((4, 3)), 2, np.float64)


def test_registry_names():
    assert "sigmoid+squared_error" in likelihood_names()
    assert get_likelihood("softmax").name == "categorical"
    with pytest.raises(ValueError, match="likelihood: unknown name 'cauchy'.*categorical"):
        get_likelihood("cauchy")
    with pytest.raises(ValueError, match="unknown name"):
        get_likelihood("sigmoid+hinge")


@pytest.mark.parametrize("activation", ["relu", "identity", "tanh", "softplus", "elu", "gelu", "leaky_relu"])
def test_binary_cross_entropy_needs_outputs_in_the_unit_interval(activation):
    with pytest.raises(ValueError, match=f"binary_cross_entropy needs outputs in \\(0, 1\\), which {activation} "
                                         "does not give; valid pairs: sigmoid\\+binary_cross_entropy"):
        dp.Network([2, 3, 1], likelihood=f"{activation}+binary_cross_entropy")
    assert f"{activation}+binary_cross_entropy" not in likelihood_names()
    assert f"{activation}+squared_error" in likelihood_names()


@pytest.mark.parametrize("gap", [20.0, 30.0])
def test_categorical_loss_of_a_confident_right_answer_is_exact_to_one_unit_of_one(gap):
    # -log p = log(1 + 2 e^-gap) when the target's logit leads by `gap`: summed as
    # (m - T.z) + log sum e^(z - m), its error is that of the log near 1 (summed as
    # m + log sum - T.z, it was that of m, about 1e-15)
    net = dp.Network([1, 3], likelihood="categorical", dtype="float64")
    net.W[1][...] = [[0.0, 0.0, 0.0], [0.0, 0.0, gap]]
    assert abs(net.loss([[1.0]], [2]) - math.log1p(2 * math.exp(-gap))) < 2.5e-16


@pytest.mark.parametrize("name", ["categorical", "bernoulli", "gaussian", "poisson", "sigmoid+binary_cross_entropy",
                                  "identity+squared_error"])
def test_each_likelihood_samples_targets_of_its_own_kind(name):
    """Made-up targets (gradcheck, explain) come from the likelihood: what encode_targets
    takes, and of the kind it models (reals for a Gaussian, not 0/1)."""
    lik = dp.get_likelihood(name)
    y = lik.sample_targets(np.random.default_rng(0), 200, 3)
    T = lik.encode_targets(y, 3, np.float64)
    assert T.shape == (200, 3)
    values = np.unique(T)
    if name in ("categorical", "bernoulli", "sigmoid+binary_cross_entropy"):
        assert set(values) == {0.0, 1.0}
    elif name == "poisson":
        assert values.min() >= 0 and np.all(values == np.round(values)) and len(values) > 2
    else:
        assert len(values) > 100 and values.min() < 0  # real values, not labels
