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


def test_a_mixed_table_is_exported_with_one_raw_input_per_column(tmp_path):
    import warnings

    import pandas as pd

    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({"income": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(10, 1, n)),
                       "job": rng.choice(np.array(["clerk", "nurse", "chef", "", "NA"], dtype=object), n),
                       "owner": rng.random(n) < 0.5, "ref": np.arange(n)})
    y = 1000 + 3 * np.log(df["income"].fillna(20000)) + (df["job"] == "nurse") * 50 + df["owner"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the row number 'ref' is left out, with a notice)
        model, _ = dp.fit(df, y, hidden=[8], epochs=5, seed=0, bins=4, members=2)  # (the recipe's pieces)
    job = next(c for c in model.table.columns if c.name == "job")
    assert len(model.table.columns[0].edges) == 5
    assert job.indicator and [c.kind for c in model.table.columns] == ["number", "category", "boolean", "ignored"]
    to_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("income", "tensor(float)"), ("job", "tensor(string)"), ("owner", "tensor(float)")]
    new = df.assign(job=["pilot", "", "NA", "chef"] * (n // 4))  # an unseen value, and gaps in two spellings
    feeds = {"income": new["income"].to_numpy(np.float32)[:, None], "job": new["job"].to_numpy(object)[:, None],
             "owner": new["owner"].to_numpy(np.float32)[:, None]}
    np.testing.assert_allclose(session.run(None, feeds)[0][:, 0], model.predict(new), rtol=1e-5)
    renamed = dp.Model(model.network, columns=type(model.columns)(("o", "job", "owner", "ref"), model.columns.target),
                       table=type(model.table)([type(c)(**{**vars(c), "name": n})
                                                for c, n in zip(model.table.columns, ("o", "job", "owner", "ref"))]),
                       target_scaler=model.target_scaler)
    with pytest.raises(ValueError, match="the column name 'o' is one the graph uses"):
        to_onnx(renamed, tmp_path / "r.onnx")


@pytest.mark.parametrize("likelihood,K", [("categorical", 3), ("bernoulli", 1), ("gaussian", 2), ("poisson", 1)])
def test_an_ensemble_is_exported_as_its_members_mean(tmp_path, likelihood, K):
    net = dp.Network([5, 7, 6, K], activation="gelu", likelihood=likelihood, seed=3, members=4)
    model = dp.Model(net, classes=["no", "yes"] if likelihood == "bernoulli" else None)
    to_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    expected = model.predict_proba(X) if model.task == "classification" else net.forward(X)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), expected, rtol=1e-5, atol=1e-6)
