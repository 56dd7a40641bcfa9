import numpy as np
import pytest

import deltaprop as dp


def blobs(rng, n=300):
    X = rng.normal(size=(n, 3)) * [1, 50, 0.01] + [0, 1000, 5]
    Z = (X - [0, 1000, 5]) / [1, 50, 0.01]
    return X, Z


def test_string_labels_with_a_raw_validation_pair():
    rng = np.random.default_rng(0)
    X, Z = blobs(rng)
    y = np.array(["low", "mid", "high"])[(Z[:, 0] > -0.5).astype(int) + (Z[:, 0] > 0.5)]
    model, state = dp.fit(X[:200], y[:200], hidden=[16], validation=(X[200:], y[200:]), epochs=60,
                          optimizer=dp.Adam(learning_rate=0.01), seed=0)
    assert model.classes.tolist() == ["high", "low", "mid"] and model.network.likelihood.name == "categorical"
    assert state.history.val_metric[-1] > 0.85  # the raw validation rows were transformed like X
    assert model.score(X[200:], y[200:]) == pytest.approx(state.history.val_metric[-1])
    np.testing.assert_allclose(model.predict_proba(X[:5]).sum(axis=1), 1, rtol=1e-5)


def test_training_does_not_depend_on_numpys_global_error_settings():
    # emlearn's import sets np.seterr(all="raise"): an underflowing float32 gradient once raised
    with np.errstate(all="raise"):
        test_string_labels_with_a_raw_validation_pair()


def test_regression_in_target_units():
    rng = np.random.default_rng(1)
    X, Z = blobs(rng)
    y = 5000 + 800 * Z[:, 0] + 300 * Z[:, 1]
    model, _ = dp.fit(X, y, hidden=[16], epochs=80, optimizer=dp.Adam(learning_rate=0.01), seed=0)
    assert model.target_scaler is not None and model.score(X, y) > 0.95
    pred = model.predict(X)
    assert pred.shape == (300,) and abs(pred.mean() - y.mean()) < 0.05 * y.std()


def test_multilabel_and_weights_and_continuing():
    rng = np.random.default_rng(2)
    X, Z = blobs(rng)
    Y = np.c_[Z[:, 0] > 0, Z[:, 1] > 0].astype(int)
    w = np.where(Y[:, 0] == 1, 2.0, 1.0)
    model, state = dp.fit(X, Y, hidden=[16], epochs=30, sample_weight=w, optimizer=dp.Adam(learning_rate=0.01),
                          seed=0)
    assert model.network.sizes[-1] == 2 and model.classes is None
    assert model.predict(X).shape == (300, 2) and model.score(X, Y) > 0.8
    more = dp.train(model.network, model.transform(X), Y, epochs=5, sample_weight=w, state=state,
                    optimizer=dp.Adam(learning_rate=0.01))
    assert more.epoch == 35


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="X: expected a 2-D array of numbers"):
        dp.fit(np.array(["a", "b"]), [0, 1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        dp.fit(np.ones((4, 2)), ["a"] * 4, task="classification")


@pytest.mark.parametrize("y,message", [
    (np.array([1.0, np.nan, 2.0, 3.0, np.nan, 1.0]), "y: expected finite values, found nan at rows 1 and 4"),
    (np.array([1.0, 2.0, np.inf, 3.0, 1.0, 0.0]), "y: expected finite values, found inf at row 2"),
    (np.array(["a", "b", "", "a", "b", "a"]), r"y: missing targets \(empty, None or NaN\) at row 2;"),
    (np.array(["a", None, "b", float("nan"), "a", "b"], dtype=object), "missing targets .* at rows 1 and 3"),
])
def test_missing_or_infinite_targets_are_refused_naming_the_rows(y, message):
    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match=message):
        dp.fit(X, y, epochs=1)


def test_a_target_column_is_named_by_its_series_name():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame({"a": np.arange(6.0), "b": np.ones(6)})
    with pytest.raises(ValueError, match=r"y \(price\): expected finite values, found nan at row 3"):
        dp.fit(X, pd.Series([1.0, 2, 3, np.nan, 5, 6], name="price"), epochs=1)
    with pytest.raises(ValueError, match="validation y: missing targets"):
        dp.fit(X, pd.Series(list("ababab")), epochs=1, validation=(X, ["a", "b", "", "a", "b", "a"]))


def test_targets_beyond_the_networks_dtype_are_refused_where_the_network_sees_them():
    """y = 1e39 fits float64 but not float32: never an inf loss. Standardized, it is a
    large but representable value (the Model maps predictions back in float64)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = rng.normal(size=40)
    y[[7, 30]] = 1e39
    with pytest.raises(ValueError, match=r"y: 1e\+39 at rows 7 and 30 is beyond the range of float32 .* "
                                         "dtype='float64'"):
        dp.fit(X, y, epochs=1, standardize=False)
    net = dp.Network([2, 1], likelihood="gaussian", seed=0)
    with pytest.raises(ValueError, match="y: 1e.39 at rows 7 and 30 is beyond the range of float32"):
        dp.train(net, X, y, epochs=1)
    model, state = dp.fit(X, y, epochs=2, seed=0)  # standardized: finite all the way
    assert np.all(np.isfinite(state.history.loss)) and np.all(np.isfinite(model.predict(X)))
    dp.fit(X, y, epochs=1, standardize=False, dtype="float64")  # float64 holds it


def test_standardizing_huge_but_finite_values():
    X = np.array([[1e300], [-1e300], [3e300]])
    s = dp.Standardizer.fit(X)
    assert np.isfinite(s.scale).all() and s.scale[0] == pytest.approx(np.std([1, -1, 3]) * 1e300)


def test_a_data_set_goes_in_whole_and_images_keep_their_own_scale(tmp_path):
    from deltaprop.data.datasets import Dataset

    rng = np.random.default_rng(0)
    pixels = rng.random((120, 16))
    labels = (pixels[:, :8].sum(axis=1) > 4).astype(int)
    images = Dataset("pixels", pixels, labels, "classification", images=True)
    model, _ = dp.fit(images, hidden=[8], epochs=2, seed=0)
    assert model.preprocessor is None  # pixel intensities in [0, 1]: the policy is fit's, for every caller
    assert dp.fit(images, hidden=[8], epochs=2, seed=0, standardize=True)[0].preprocessor is not None
    table = Dataset("table", pixels, labels, "classification", feature_names=[f"f{i}" for i in range(16)],
                    target_name="label")
    model, _ = dp.fit(table, hidden=[8], epochs=2, seed=0)  # a table (a CSV file's): by name, the tabular recipe
    assert model.table is not None and model.network.members == 4
    assert model.columns.features[0] == "f0" and model.columns.target == ("label",)
    with pytest.raises(TypeError, match="a Dataset carries its own targets"):
        dp.fit(table, labels)
    named_images = Dataset("pixels", pixels, labels, "classification", feature_names=[f"p{i}" for i in range(16)],
                           images=True)  # (images keep their own scale, names or not)
    model, _ = dp.fit(named_images, hidden=[8], epochs=2, seed=0)
    assert model.table is None and model.preprocessor is None and model.network.members == 1
    # a file's mixed columns arrive by name, each learning its encoding
    (tmp_path / "t.csv").write_text("size,colour,y\n" + "".join(
        f"{i % 7},{'red' if i % 3 else 'blue'},{'ab'[i % 2]}\n" for i in range(60)))
    model, _ = dp.fit(dp.load_data(tmp_path / "t.csv"), hidden=[4], epochs=2, seed=0)
    assert model.table is not None and model.columns.features == ("size", "colour")


def test_a_data_set_splits_into_its_own_test_set_or_the_rows_held_out():
    from deltaprop.data.datasets import Dataset

    y = np.array([0] * 80 + [1] * 20)
    ds = Dataset("d", np.arange(200.0).reshape(100, 2), y, "classification", lines=np.arange(2, 102))
    train, test = ds.split(dp.HeldOut(0.2, 3))
    assert len(test.X) == 20 and np.bincount(test.y).tolist() == [16, 4]  # each class keeps its share
    assert sorted(np.r_[train.lines, test.lines].tolist()) == list(range(2, 102))  # the file's lines follow
    again = ds.split(dp.HeldOut(0.2, 3))[1]
    np.testing.assert_array_equal(again.X, test.X)
    with pytest.raises(ValueError, match="held_out: d has no test split of its own"):
        ds.split(None)
    own = Dataset("m", ds.X, y, "classification", X_test=ds.X[:5], y_test=y[:5])
    train, test = own.split(None)
    assert len(train.X) == 100 and len(test.X) == 5 and train.X_test is None
