"""The command line on a real-looking table: text categories, booleans, gaps, an ID column
and prices in the thousands, as pandas writes them with ``to_csv(index=False)``."""

import numpy as np
import pandas as pd
import pytest

import deltaprop as dp
from conftest import need
from deltaprop.cli import main


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def shop_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("shop")
    rng = np.random.default_rng(1)
    n = 500
    df = pd.DataFrame({
        "id": [f"c{i}" for i in range(n)],
        "price": np.round(np.exp(rng.normal(8, 1, n)), 2),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "member": rng.random(n) < 0.4,
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, n)),
    })
    df["buy"] = np.where((df.city == "paris") & df.member | (df.age.fillna(50) > 60), "yes", "no")
    df.to_csv(d / "shop.csv", index=False)
    new = df.drop(columns=["buy"])[:20].assign(city=["tokyo"] + ["lyon"] * 19)  # a city never seen
    new["member"] = new["member"].astype(object)
    new.loc[3, "member"] = None  # a gap where training had none
    new.to_csv(d / "new.csv", index=False)
    return d, df, new


def test_train_predict_and_info_on_a_table_of_mixed_columns(capsys, shop_csv):
    d, df, new = shop_csv
    status, out, err = run(capsys, "train", "--data", d / "shop.csv", "--target", "buy", "--epochs", "40",
                           "--plot", "", "--out", d / "shop.safetensors")
    assert status == 0, err
    assert "deltaprop: note: X: column 'id' has a different value in every row (an ID?): left out" in err
    assert "data: shop.csv, 400 training and 100 test samples, 5 features, 2 classes" in out
    accuracy = float(out.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.9
    # the command line and Python give the same answers on the raw rows, unseen values included
    status, out, err = run(capsys, "predict", d / "shop.safetensors", d / "new.csv", "--proba")
    assert status == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    model = dp.load(d / "shop.safetensors")
    raw = pd.read_csv(d / "new.csv", keep_default_na=False).astype(str)  # the cells as the file has them
    np.testing.assert_array_equal([r[0] for r in rows], model.predict(raw))
    np.testing.assert_allclose(np.array([r[1:] for r in rows], dtype=float), model.predict_proba(raw), atol=2e-6)
    status, out, _ = run(capsys, "info", d / "shop.safetensors")
    assert "inputs: 24 from the table's columns" in out and "  id: left out" in out  # (the recipe's bins)
    assert "an ensemble of 4 networks" in out
    assert "  city: category, one input per value ('lyon', 'nice', 'paris') and one for any other" in out
    assert "  member: boolean, 0/1" in out and "gaps filled with" in out
    # the ONNX graph takes the raw columns (floats for numbers and booleans, strings for text) and agrees
    ort = need("onnxruntime")
    status, out, err = run(capsys, "export", d / "shop.safetensors", "--onnx", d / "shop.onnx")
    assert status == 0, err
    assert "inputs, N x 1 each: price (float), city (string), member (float), age (float)" in out
    feeds = {"price": new["price"].to_numpy(np.float32)[:, None], "city": new["city"].to_numpy(object)[:, None],
             "member": new["member"].astype(float).to_numpy(np.float32)[:, None],
             "age": new["age"].to_numpy(np.float32)[:, None]}
    o, label = ort.InferenceSession(str(d / "shop.onnx")).run(None, feeds)
    np.testing.assert_allclose(o, model.predict_proba(new), atol=1e-5)
    np.testing.assert_array_equal(label, model.predict(new))


def test_text_is_read_as_pandas_reads_it_spaces_included(capsys, tmp_path):
    """Categories written with a trailing space (as free-text columns often are) stay as
    written: rows read by pandas find the categories that the CLI's model learned."""
    rng = np.random.default_rng(3)
    n = 300
    city = rng.choice(["paris ", "lyon", " nice"], n)
    df = pd.DataFrame({"city": city, "x": rng.normal(size=n), "buy": np.where(city == "paris ", "yes", "no")})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.drop(columns=["buy"]).to_csv(tmp_path / "new.csv", index=False)
    status, out, err = run(capsys, "train", "--data", tmp_path / "t.csv", "--target", "buy", "--epochs", "30",
                           "--plot", "", "--out", tmp_path / "m.safetensors")
    assert status == 0, err
    status, out, err = run(capsys, "predict", tmp_path / "m.safetensors", tmp_path / "new.csv")
    assert status == 0, err
    cli = [line.split(",")[0] for line in out.strip().splitlines()[1:]]
    python = dp.load(tmp_path / "m.safetensors").predict(pd.read_csv(tmp_path / "new.csv"))
    np.testing.assert_array_equal(cli, python)
    assert np.mean(python == df["buy"].to_numpy()) > 0.95


def test_a_parquet_file_of_mixed_columns_is_read_whole(capsys, shop_csv, tmp_path):
    need("pyarrow")
    d, df, new = shop_csv
    df.to_parquet(tmp_path / "shop.parquet")  # pandas' own Parquet: one row group, its index, text and gaps
    new.to_parquet(tmp_path / "new.parquet")
    status, out, err = run(capsys, "train", "--data", tmp_path / "shop.parquet", "--target", "buy", "--epochs", "30",
                           "--plot", "", "--out", tmp_path / "m.safetensors")
    assert status == 0, err
    assert "data: shop.parquet, 400 training and 100 test samples, 5 features, 2 classes" in out
    status, out, err = run(capsys, "predict", tmp_path / "m.safetensors", tmp_path / "new.parquet")
    assert status == 0, err
    np.testing.assert_array_equal(out.split()[1:], dp.load(tmp_path / "m.safetensors").predict(new))
    status, out, err = run(capsys, "evaluate", tmp_path / "m.safetensors", "--data", tmp_path / "shop.parquet")
    assert status == 0 and float(out.split("accuracy: ")[1].split()[0]) > 0.9, err
    # a Parquet file of numbers alone is still read by blocks
    df[["price", "buy"]].to_parquet(tmp_path / "numbers.parquet")
    status, out, err = run(capsys, "train", "--data", tmp_path / "numbers.parquet", "--target", "buy", "--epochs", "2",
                           "--plot", "", "--out", tmp_path / "n.safetensors")
    assert status == 0 and "test samples in blocks" in out, err


def test_a_csv_of_numbers_takes_the_recipe_cross_fitted_unless_told(capsys, tmp_path):
    """The tabular recipe is train's default for any CSV table, numbers alone included; its
    ensemble is cross-fitted unless a validation share or a patience is given."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"size": np.round(rng.lognormal(3, 1, 300), 1), "rooms": rng.integers(1, 6, 300)})
    df["big"] = np.where(df["size"] > 20, "yes", "no")
    df.to_csv(tmp_path / "rooms.csv", index=False)
    status, out, err = run(capsys, "train", "--data", tmp_path / "rooms.csv", "--target", "big", "--plot", "",
                           "--out", tmp_path / "a.safetensors")
    assert status == 0, err
    assert "x 4 (relu, bernoulli)" in out and out.count("network: ") == 1
    assert "stopped: cross-fit: 4 members, each on its own fold: no validation loss improvement" in out
    assert "epoch 1/300" in err and "member" not in err  # (one run: the members train together)
    model = dp.load(tmp_path / "a.safetensors")
    assert model.network.members == 4 and model.table is not None
    best = model.metadata["weights_of_epoch"]  # (each member's own best epoch)
    assert len(best) == 4 and all(1 <= e <= model.metadata["epochs"] for e in best)
    assert float(out.split("test accuracy: ")[1].split()[0]) > 0.9
    status, out, err = run(capsys, "train", "--data", tmp_path / "rooms.csv", "--target", "big", "--plot", "",
                           "--validation-fraction", "0.2", "--out", tmp_path / "b.safetensors")
    assert status == 0, err
    assert "cross-fit" not in out and dp.load(tmp_path / "b.safetensors").network.members == 4


def test_a_checkpointed_table_is_cross_fitted_as_one_that_is_not(capsys, tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"size": rng.lognormal(3, 1, 200).round(1), "kind": rng.choice(["a", "b"], 200)})
    df["big"] = np.where(df["size"] > 20, "yes", "no")
    df.to_csv(tmp_path / "t.csv", index=False)
    common = ("train", "--data", tmp_path / "t.csv", "--target", "big", "--epochs", "12", "--plot", "")
    status, out, err = run(capsys, *common, "--checkpoint", tmp_path / "ck", "--out", tmp_path / "a.safetensors")
    assert status == 0 and "stopped: cross-fit: 4 members" in out, err
    status, out, err = run(capsys, *common, "--out", tmp_path / "b.safetensors")
    assert status == 0, err
    a, b = dp.load(tmp_path / "a.safetensors"), dp.load(tmp_path / "b.safetensors")
    assert a.network.theta.tobytes() == b.network.theta.tobytes()


def test_an_animation_follows_the_cross_fitted_ensemble_epoch_by_epoch(capsys, tmp_path):
    """--animate draws the network epoch by epoch: the recipe's cross-fitted members train
    together, in one run, so it follows them all; its last frame has each member's best epoch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    pd.DataFrame({"u": X[:, 0], "v": X[:, 1], "c": np.where(X[:, 0] * X[:, 1] > 0, "a", "b")}).to_csv(
        tmp_path / "two.csv", index=False)
    status, out, err = run(capsys, "train", "--data", tmp_path / "two.csv", "--target", "c", "--epochs", "4",
                           "--plot", "", "--animate", tmp_path / "two.gif", "--out", tmp_path / "two.safetensors")
    assert status == 0, err
    assert "x 4" in out and "stopped: cross-fit: 4 members" in out and out.count("network: ") == 1
    assert "animation: " in out and "(5 frames)" in out  # (4 epochs, then the final weights)
    assert (tmp_path / "two.gif").read_bytes()[:3] == b"GIF"
