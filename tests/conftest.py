import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# DELTAPROP_HIDE_NUMBA=1: the whole suite as if Numba were not installed (the NumPy path),
# here and in every process the tests start
if os.environ.get("DELTAPROP_HIDE_NUMBA"):
    _HIDE = str(Path(__file__).resolve().parent / "hide_numba")
    sys.path.insert(0, _HIDE)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_HIDE, os.environ.get("PYTHONPATH")) if p)

from deltaprop.core.engine import Workspace, forward

LIKELIHOOD_NAMES = ["categorical", "bernoulli", "gaussian", "poisson",
                    "sigmoid+squared_error", "sigmoid+binary_cross_entropy", "tanh+squared_error"]
KINKED = {"relu", "leaky_relu", "elu"}


def make_targets(likelihood, n, K, rng):
    """Targets that fit each likelihood, for n samples and K outputs."""
    if likelihood == "categorical":
        return rng.integers(0, K, n)
    if likelihood in ("bernoulli", "sigmoid+binary_cross_entropy"):
        return rng.integers(0, 2, (n, K))
    if likelihood == "poisson":
        return rng.poisson(2.0, (n, K))
    if likelihood == "sigmoid+squared_error":
        return rng.random((n, K))
    return rng.normal(size=(n, K))


def min_abs_hidden_z(net, X):
    ws = Workspace(net.sizes, X.shape[0], net.dtype)
    ws.X[...] = X
    forward(net, ws, X.shape[0])
    zs = [np.abs(ws.z[l]).min() for l in range(1, net.n_layers)]
    return min(zs) if zs else np.inf


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def iris():
    """Iris, standardized (the estimators' tests)."""
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def need(module: str):
    """Import an optional module: without it the test is skipped here, and fails in CI
    (``DELTAPROP_CI=1``), which installs every optional part (but Numba, when hidden)."""
    if module == "numba" and os.environ.get("DELTAPROP_HIDE_NUMBA"):
        pytest.skip("Numba is hidden (DELTAPROP_HIDE_NUMBA=1): the NumPy path alone")
    if os.environ.get("DELTAPROP_CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def backend_or_skip(name: str):
    """The named array backend (:mod:`deltaprop.core.backend`), if it can run here: NumPy
    always; PyTorch's CPU tensors where torch and array-api-compat are installed (in CI
    they are, and a missing one fails); CuPy only on a machine with a GPU and CuPy."""
    from deltaprop import get_backend

    if name == "torch":
        need("torch"), need("array_api_compat")
    elif name == "cupy":
        cupy = pytest.importorskip("cupy", reason="the cupy backend needs CuPy and an NVIDIA GPU")
        try:
            cupy.zeros(1)
        except Exception as e:  # (installed, but no GPU or driver)
            pytest.skip(f"the cupy backend needs an NVIDIA GPU: {e}")
    return get_backend(name)


@pytest.fixture(params=["numpy", "torch", "cupy"])
def backend(request):
    """Each array backend present here (see :func:`backend_or_skip`)."""
    return backend_or_skip(request.param)
