"""ONNX export: the graph computes what the Model computes, from raw rows."""

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.io.onnx import to_onnx

ort = pytest.importorskip("onnxruntime")


def run_onnx(path, X):
    return ort.InferenceSession(str(path)).run(None, {"X": np.asarray(X, dtype=np.float32)})[0]


@pytest.mark.parametrize("activation,likelihood", [
    ("gelu", "gaussian"), ("elu", "bernoulli"), ("leaky_relu", "poisson"), ("softplus", "categorical"),
    ("sigmoid", "sigmoid+squared_error"), ("tanh", "categorical"), ("relu", "tanh+squared_error"),
    ("identity", "gaussian")])
def test_export_every_activation_and_output(tmp_path, activation, likelihood):
    net = dp.Network([5, 7, 6, 3], activation=activation, likelihood=likelihood, seed=2)
    to_onnx(dp.Model(net), tmp_path / "m.onnx")
    X = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), net.forward(X), atol=1e-5)


def test_export_with_standardization_and_float64(tmp_path):
    net = dp.Network([3, 5, 2], activation="tanh", likelihood="gaussian", seed=1, dtype="float64")
    model = dp.Model(net, preprocessor=dp.Standardizer([1.0, -2.0, 0.5], [2.0, 0.5, 1.0]),
                     target_scaler=dp.Standardizer([10.0, 0.0], [3.0, 1.0]))
    to_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(1).normal(size=(6, 3))
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), model.predict(X), rtol=1e-5, atol=1e-4)


def test_binary_export_gives_both_class_probabilities(tmp_path):
    net = dp.Network([3, 4, 1], likelihood="bernoulli", seed=0)
    model = dp.Model(net, classes=["no", "yes"])
    to_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(2).normal(size=(7, 3))
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), model.predict_proba(X), atol=1e-6)
