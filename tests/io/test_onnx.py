"""ONNX export: the graph computes what the network computes."""

import numpy as np
import pytest

import deltaprop as dp

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("activation,likelihood", [
    ("gelu", "gaussian"), ("elu", "bernoulli"), ("leaky_relu", "poisson"), ("softplus", "categorical"),
    ("sigmoid", "sigmoid+squared_error"), ("tanh", "categorical")])
def test_export_every_activation_and_output(tmp_path, activation, likelihood):
    from deltaprop.export import to_onnx

    net = dp.Network([5, 7, 6, 3], activation=activation, likelihood=likelihood, seed=2)
    to_onnx(net, tmp_path / "m.onnx")
    X = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"X": X})[0]
    np.testing.assert_allclose(got, net.forward(X), atol=1e-5)



def test_export_with_standardization_and_float64(tmp_path):
    from deltaprop.export import to_onnx

    net = dp.Network([3, 5, 2], activation="tanh", likelihood="gaussian", seed=1, dtype="float64")
    mean, std = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 1.0])
    to_onnx(net, tmp_path / "m.onnx", mean=mean, std=std, out_mean=[10.0, 0.0], out_std=[3.0, 1.0])
    X = np.random.default_rng(1).normal(size=(6, 3))
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"X": X.astype(np.float32)})[0]
    want = net.forward((X - mean) / std) * [3.0, 1.0] + [10.0, 0.0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
