import warnings

import numpy as np
import pytest

from deltaprop import ACTIVATIONS, get_activation

NAMES = list(ACTIVATIONS)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_finite_differences(name, backend):
    act = get_activation(name)
    z = np.linspace(-4, 4, 81) + 0.0123  # keep off the kink at 0
    eps = 1e-6
    up, down, at = (backend.from_host(v) for v in (z + eps, z - eps, z))  # (on each array backend present)
    numeric = (backend.to_host(act(up)) - backend.to_host(act(down))) / (2 * eps)
    np.testing.assert_allclose(backend.to_host(act.prime(at)), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_at_extreme_inputs(name, dtype):
    act = get_activation(name)
    z = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            h, d = act(z), act.prime(z)
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(d))
    assert h.dtype == dtype and d.dtype == dtype


def test_known_values():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(get_activation("sigmoid")(z), 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(get_activation("relu")(z), [0, 0, 3])
    np.testing.assert_allclose(get_activation("leaky_relu")(z), [-0.02, 0, 3])
    np.testing.assert_allclose(get_activation("elu")(z), [np.expm1(-2), 0, 3])
    np.testing.assert_allclose(get_activation("softplus")(z), np.log1p(np.exp(z)))
    c = np.sqrt(2 / np.pi)
    np.testing.assert_allclose(get_activation("gelu")(z), 0.5 * z * (1 + np.tanh(c * (z + 0.044715 * z**3))))


def test_writes_into_strided_views():
    act = get_activation("tanh")
    z = np.linspace(-1, 1, 12).reshape(4, 3)
    h = np.ones((4, 4))
    act.forward(z, h[:, :-1])
    np.testing.assert_allclose(h[:, :-1], np.tanh(z))
    assert np.all(h[:, -1] == 1)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="activation: unknown name 'swish'.*relu"):
        get_activation("swish")
    assert get_activation("logistic").name == "sigmoid"
