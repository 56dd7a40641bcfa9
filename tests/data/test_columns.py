"""A model knows its columns: named tables are matched by name, arrays taken in order."""

import json
import re

import numpy as np
import pytest
from sklearn.datasets import load_iris

import deltaprop as dp
from deltaprop.data.columns import Columns, table_names
from deltaprop.io.files import atomic_safetensors, read_safetensors

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def iris_model():
    data = load_iris(as_frame=True)
    X = data.data
    y = data.target.map(dict(enumerate(data.target_names))).rename("species")
    model, _ = dp.fit(X, y, hidden=[8], epochs=40, seed=0)
    return model, X, y


def test_a_model_fitted_on_a_dataframe_records_its_columns_and_target(iris_model, tmp_path):
    model, X, _ = iris_model
    assert model.columns.features == tuple(X.columns) and model.columns.target == ("species",)
    model.save(tmp_path / "m.safetensors")
    assert dp.load(tmp_path / "m.safetensors").columns == model.columns


def test_reordered_columns_give_the_same_answers(iris_model):
    model, X, _ = iris_model
    reversed_ = X[X.columns[::-1]]
    np.testing.assert_array_equal(model.predict(reversed_), model.predict(X))
    np.testing.assert_array_equal(model.predict_proba(reversed_), model.predict_proba(X))
    # a dict of columns and a pyarrow Table are named tables too
    as_dict = {c: X[c].to_numpy() for c in reversed_.columns}
    np.testing.assert_array_equal(model.predict(as_dict), model.predict(X))
    pa = pytest.importorskip("pyarrow")
    np.testing.assert_array_equal(model.predict(pa.Table.from_pandas(reversed_)), model.predict(X))
    # a table that still holds the target column: that column is not an input
    np.testing.assert_array_equal(model.predict(X.assign(species="?")), model.predict(X))


def test_an_unnamed_array_is_taken_in_order_and_must_have_the_width(iris_model):
    model, X, _ = iris_model
    np.testing.assert_array_equal(model.predict(X.to_numpy()), model.predict(X))
    np.testing.assert_array_equal(model.predict(pd.DataFrame(X.to_numpy())), model.predict(X))  # columns 0..3
    with pytest.raises(ValueError, match=r"expected a table of 4 columns \('sepal length \(cm\)'.*found shape \(150, 3\)"):
        model.predict(X.to_numpy()[:, :3])


@pytest.mark.parametrize("change,message", [
    (lambda X: X.rename(columns={"petal width (cm)": "petal_width"}),
     "missing the model's column 'petal width (cm)'; column 'petal_width' is not among the model's (renamed?)"),
    (lambda X: X.drop(columns=["sepal width (cm)"]), "missing the model's column 'sepal width (cm)'; the model"),
    (lambda X: X.assign(colour=1.0), "column 'colour' is not among the model's; the model takes 4 columns"),
])
def test_missing_extra_or_renamed_columns_are_named(iris_model, change, message):
    model, X, _ = iris_model
    with pytest.raises(ValueError, match=re.escape(message)):
        model.predict(change(X))


def test_names_of_tables():
    assert table_names(np.ones((2, 2))) is None
    assert table_names({"a": [1], "b": [2]}) == ["a", "b"]
    assert table_names(pd.DataFrame(np.ones((2, 2)))) is None  # numbered, not named
    with pytest.raises(ValueError, match="'a' named more than once"):
        Columns(("a", "a"))
    with pytest.raises(ValueError, match="'y' is both a feature and the target"):
        Columns(("a", "y"), ("y",))
    with pytest.raises(ValueError, match="appear more than once"):
        Columns(("a", "b")).arrange(pd.DataFrame([[1, 2, 3]], columns=["a", "b", "b"]))


def test_an_array_with_names_given_and_the_width_checked():
    X = np.random.default_rng(0).normal(size=(60, 3))
    model, _ = dp.fit(X, X[:, 0] > 0, hidden=[4], epochs=2, seed=0, columns=["u", "v", "w"])
    assert model.columns.features == ("u", "v", "w")
    assert (model.predict({"w": X[:, 2], "u": X[:, 0], "v": X[:, 1]}) == model.predict(X)).all()
    with pytest.raises(ValueError, match="columns: 2 names for 3 columns of X"):
        dp.fit(X, X[:, 0] > 0, epochs=1, columns=["u", "v"])


def test_a_version_3_file_takes_its_feature_names_as_columns(tmp_path, iris_model):
    """The command line recorded a CSV's header as information only: it is now matched."""
    model, X, _ = iris_model
    model.save(tmp_path / "m.safetensors")
    tensors, header = read_safetensors(tmp_path / "m.safetensors")
    config, metadata = json.loads(header["config"]), json.loads(header["metadata"])
    del config["columns"]
    metadata.update(feature_names=list(X.columns), target="species")
    header = {**header, "format_version": "3", "config": json.dumps(config), "metadata": json.dumps(metadata)}
    atomic_safetensors(tmp_path / "v3.safetensors", tensors, {k: v for k, v in header.items() if k != "checksum"})
    old = dp.load(tmp_path / "v3.safetensors")
    assert old.columns == model.columns and "feature_names" not in old.metadata
    np.testing.assert_array_equal(old.predict(X[X.columns[::-1]]), model.predict(X))


def test_the_estimators_models_know_the_columns_of_a_dataframe(iris_model, tmp_path):
    _, X, y = iris_model
    clf = dp.MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    assert clf.model_.columns.features == tuple(X.columns)
    clf.save(tmp_path / "c.safetensors")
    back = dp.MLPClassifier.load(tmp_path / "c.safetensors")
    assert list(back.feature_names_in_) == list(X.columns)
    np.testing.assert_array_equal(dp.load(tmp_path / "c.safetensors").predict(X[X.columns[::-1]]), clf.predict(X))
