"""Tables of mixed columns: what each kind of column becomes, in training and at prediction."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import deltaprop as dp
from deltaprop.data.tables import TableEncoder, TableNotice, is_missing
from deltaprop.io.files import read_safetensors


def encode(columns: dict, **options):
    encoder, notices = TableEncoder.fit([np.asarray(v) for v in columns.values()], list(columns), **options)
    return encoder, notices


def test_numbers_are_filled_with_the_median_scaled_robustly_and_clipped_smoothly():
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 1000.0])  # a gap, and an outlier that would swamp a std
    encoder, notices = encode({"x": x})
    (c,) = encoder.columns
    assert notices == [] and c.kind == "number" and c.indicator
    q1, q3 = np.percentile([1, 2, 3, 4, 1000], [25, 75])
    assert c.center == c.fill == 3.0 and c.scale == pytest.approx((q3 - q1) / 1.349)
    out = encoder.transform([x])
    assert encoder.input_names() == ["x", "x=<missing>"]
    z = (np.r_[1, 2, 3, 4, 3, 1000] - 3.0) / c.scale
    np.testing.assert_allclose(out[:, 0], z / np.sqrt(1 + (z / 3) ** 2))  # then clipped smoothly
    assert 2.99 < out[5, 0] < 3 and abs(out[1, 0] - z[1]) < 0.02  # the outlier bounded, the middle kept
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 0, 1, 0])


def test_numbers_get_piecewise_linear_inputs_over_their_quantile_bins():
    x = np.r_[np.zeros(50), np.arange(1.0, 51.0), [np.nan]]  # half zeros: tied quantiles merge
    encoder, _ = encode({"x": x, "flag": np.r_[np.zeros(60), np.ones(41)], "y": np.arange(101.0)}, bins=4)
    cx, cflag, cy = encoder.columns
    assert cx.edges == [0.0, 0.5, 25.25, 50.0] and cx.width == 1 + 3 + 1  # (quantiles 0 and 0.25 tied)
    assert cflag.edges == [] and cflag.width == 1  # two values: nothing a bin adds
    assert cy.edges == [0.0, 25.0, 50.0, 75.0, 100.0] and cy.width == 5
    out = encoder.transform([x, np.r_[np.zeros(60), np.ones(41)], np.r_[np.arange(100.0), 130.0]])
    bins = out[:, encoder.input_names().index("y in [0, 25]"):][:, :4]
    np.testing.assert_allclose(bins[10], [0.4, 0, 0, 0])  # 10 is 40% through the first bin
    np.testing.assert_allclose(bins[60], [1, 1, 0.4, 0])
    np.testing.assert_allclose(bins[100], [1, 1, 1, 1])  # beyond the last edge: 1, never more
    gap = encoder.input_names().index("x=<missing>")
    assert out[100, gap] == 1 and cx.fill == 0.5  # a gap: the median, through the bins as any 0.5
    np.testing.assert_array_equal(out[100, 1:gap], [1, 0, 0])
    again = TableEncoder.from_config(json.loads(json.dumps(encoder.to_config())))
    np.testing.assert_array_equal(again.transform([x, np.r_[np.zeros(60), np.ones(41)], np.arange(101.0)]),
                                  encoder.transform([x, np.r_[np.zeros(60), np.ones(41)], np.arange(101.0)]))
    for bad in ([1.0], [2.0, 1.0], [0.0, float("inf")]):
        config = encoder.to_config()
        config[2]["edges"] = bad
        with pytest.raises(ValueError, match="malformed bins of column 'y'"):
            TableEncoder.from_config(config)
    old = [{k: v for k, v in c.items() if k != "edges"} for c in encoder.to_config()]  # a file from before bins
    assert all(c.edges == [] for c in TableEncoder.from_config(old).columns)


def test_a_constant_column_gives_zeros_and_text_numbers_are_numbers():
    encoder, _ = encode({"k": np.full(30, 7), "t": np.array([" 1.5", "2", "NA", "3"] * 5 + ["4"] * 10, dtype=object)})
    k, t = encoder.columns
    assert k.kind == t.kind == "number" and k.scale == 1.0 and t.indicator  # ('NA' is a gap, as pandas reads it)
    out = encoder.transform([np.full(3, 7), np.array(["2", "", "9"], dtype=object)])
    np.testing.assert_array_equal(out[:, 0], 0.0)
    assert out[1, 2] == 1.0 and out[1, 1] == (t.fill - t.center) / t.scale


def test_categories_get_one_input_each_and_share_one_for_rare_and_unseen_values():
    city = np.array(["paris"] * 10 + ["lyon"] * 5 + ["nice"] * 3 + ["once"], dtype=object)
    encoder, _ = encode({"city": city})
    (c,) = encoder.columns
    assert c.kind == "category" and c.vocabulary == ["lyon", "nice", "paris"] and not c.indicator
    out = encoder.transform([np.array(["nice", "tokyo", "once", None, "paris"], dtype=object)])
    assert encoder.input_names() == ["city=lyon", "city=nice", "city=paris", "city=<other>"]
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 0]])


def test_the_most_frequent_categories_up_to_the_cap_and_gaps_with_their_own_input():
    values = np.array([f"v{i}" for i in range(10) for _ in range(10 - i)] + [None] * 4, dtype=object)
    encoder, _ = encode({"c": values}, max_categories=3)
    (c,) = encoder.columns
    assert c.vocabulary == ["v0", "v1", "v2"] and c.indicator
    out = encoder.transform([np.array(["v1", "v9", None], dtype=object)])
    np.testing.assert_array_equal(out, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]])


def test_numbers_in_a_text_column_match_whatever_their_type():
    # a code column with some text: a category; a file of inputs whose codes are all numbers reads floats
    codes = np.array(["75001", "75002", "7.50", "n/a", "abc"] * 6, dtype=object)
    encoder, _ = encode({"code": codes})
    (c,) = encoder.columns
    assert c.kind == "category" and c.vocabulary == ["7.5", "75001", "75002", "abc"] and c.indicator
    out = encoder.transform([np.array([75001.0, 75002, "7.5", 7.5], dtype=object)])
    np.testing.assert_array_equal(out.argmax(axis=1), [1, 2, 0, 0])


def test_booleans_as_values_or_text():
    encoder, _ = encode({"b": np.array([True, False] * 10), "s": np.array(["True", "false", ""] * 7, dtype=object)})
    b, s = encoder.columns
    assert b.kind == s.kind == "boolean" and not b.indicator and s.indicator
    out = encoder.transform([np.array([True, False, True]), np.array(["TRUE", "False", None], dtype=object)])
    np.testing.assert_array_equal(out, [[1, 1, 0], [0, 0, 0], [1, 0, 1]])


def test_ids_and_empty_columns_are_left_out_with_a_notice_and_dates_refused():
    n = 40
    encoder, notices = encode({"row": np.random.default_rng(0).permutation(n) + 100,
                               "key": np.array([f"k{i}" for i in range(n)], dtype=object),
                               "gone": np.full(n, None), "x": np.arange(n) % 3})
    assert [c.kind for c in encoder.columns] == ["ignored", "ignored", "ignored", "number"]
    assert notices == ["column 'row' numbers the rows (the integers 100..139, each once): left out as an ID",
                       "column 'key' has a different value in every row (an ID?): left out",
                       "column 'gone' is empty in every row: left out"]
    assert encoder.n_outputs == 1
    for dates in (np.array(["2024-01-31", "2024-02-01"] * 10, dtype=object),
                  np.array(["2024-01-31T10:00"] * 20, dtype="datetime64[m]")):
        with pytest.raises(ValueError, match="column 'd' holds dates.*days since a reference date"):
            encode({"d": dates})
    with pytest.raises(ValueError, match="every column was left out"):
        encode({"gone": np.full(5, np.nan)})


def test_bad_values_at_prediction_name_the_column_and_row():
    encoder, _ = encode({"x": np.arange(30.0)})
    with pytest.raises(ValueError, match="column 'x': row 1: expected a number, found 'abc'"):
        encoder.transform([np.array(["1", "abc"], dtype=object)])
    with pytest.raises(ValueError, match="column 'x': row 0: inf is not a finite number"):
        encoder.transform([np.array([np.inf, 1.0])])


def test_gaps_in_every_form():
    column = np.array([None, np.nan, pd.NA, pd.NaT, "", "nan", "NULL", "x", " ", 0, False], dtype=object)
    np.testing.assert_array_equal(is_missing(column), [True] * 7 + [False] * 4)  # (text compared exactly)


def test_the_encoding_is_checked_when_read_back():
    encoder, _ = encode({"c": np.array(["a", "b"] * 10, dtype=object), "x": np.arange(20.0)})
    config = encoder.to_config()
    assert TableEncoder.from_config(json.loads(json.dumps(config))) == encoder
    for broken in ({**config[0], "kind": "text"}, {**config[1], "scale": 0.0}, {**config[1], "vocabulary": ["a"]},
                   {**config[0], "vocabulary": ["a", "a"]}, {**config[1], "center": float("nan")}):
        with pytest.raises(ValueError, match="table: malformed encoding"):
            TableEncoder.from_config([broken, config[1]])


@pytest.fixture(scope="module")
def shop():
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({
        "id": [f"c{i}" for i in range(n)],
        "price": np.round(np.exp(rng.normal(8, 1, n)), 2),  # prices in the thousands, skewed
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "member": rng.random(n) < 0.4,
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, n)),
    })
    y = pd.Series(np.where((df.city == "paris") & df.member | (df.age.fillna(50) > 60), "yes", "no"), name="buy")
    return df, y


def test_fit_takes_a_mixed_table_and_the_model_is_the_whole_predictor(shop, tmp_path):
    df, y = shop
    with pytest.warns(TableNotice, match="column 'id' has a different value in every row"):
        model, _ = dp.fit(df[:500], y[:500], hidden=[32], epochs=60, seed=0,
                          validation=(df[500:], y[500:]))  # a raw validation table, encoded like X
    # the tabular recipe for what was not given: price and age in 8 bins each, an ensemble of 4
    assert model.table is not None and model.network.sizes[0] == (1 + 8) + 4 + 1 + (1 + 8 + 1)
    assert model.network.members == 4 and model.network.sizes[1:-1] == [32]
    assert model.score(df[500:], y[500:]) > 0.9
    # the same answers for the columns in any order, without the ID column, and in a saved file
    shuffled = df[500:][["age", "member", "city", "price"]]
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(df[500:]))
    model.save(tmp_path / "m.safetensors")
    loaded = dp.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.predict_proba(df), model.predict_proba(df))
    assert read_safetensors(tmp_path / "m.safetensors")[1]["format_version"] == "7"
    # a city never seen, a gap where training had none, a renamed column
    new = df[:3].assign(city=["tokyo", None, "paris"])
    assert model.predict(new).shape == (3,)
    with pytest.raises(ValueError, match="missing the model's column 'city'; column 'town' is not among"):
        model.predict(df.rename(columns={"city": "town"}))


def test_same_seed_same_bits_on_a_mixed_table(shop):
    df, y = shop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TableNotice)
        a, _ = dp.fit(df, y, hidden=[16], epochs=3, seed=5)
        b, _ = dp.fit(df, y, hidden=[16], epochs=3, seed=5)
    assert a.network.theta.tobytes() == b.network.theta.tobytes()


def test_a_mixed_table_takes_the_recipe_for_what_is_not_given(shop):
    from deltaprop.training.recipe import TABLE_RECIPE as R

    df, y = shop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TableNotice)
        model, state = dp.fit(df, y, seed=0)
        plain, plain_state = dp.fit(df, y, seed=0, members=1, bins=0, validation=None, early_stopping=None,
                                    label_smoothing=0.0, epochs=5)
        values, _ = dp.fit(df, y.eq("yes") * 2.5, seed=0, epochs=3)
        _, every_epoch = dp.fit(df[:64], y[:64], seed=0, early_stopping=None, hidden=[2], members=1, bins=0,
                                batch_size=64)
    net = model.network
    assert net.members == R["members"] and net.sizes[1:-1] == list(R["hidden"])
    assert len(model.table.columns[1].edges) == R["bins"] + 1
    assert state.settings["label_smoothing"] == R["label_smoothing"] and state.settings["batch_size"] == R["batch_size"]
    assert len(state.history.val_loss) == len(state.history.loss) < R["epochs"]  # (stopped early on held-out rows)
    assert plain.network.members == 1 and plain.table.columns[1].edges == []
    assert "label_smoothing" not in plain_state.settings and len(plain_state.history.loss) == 5
    assert values.network.likelihood.name == "gaussian" and values.network.members == R["members"]
    assert len(every_epoch.history.loss) == R["epochs"] and np.isnan(every_epoch.history.val_loss).all()


def test_category_values_are_looked_up_by_type_and_text_whatever_their_order():
    train = np.array(["0", "False", "x", "x", "0", "False"], dtype=object)
    encoder, _ = encode({"c": train})
    (c,) = encoder.columns
    assert c.vocabulary == ["0", "False", "x"]
    new = np.array([False, 0, 0.0, "0", None, ["unhashable"], "x"], dtype=object)  # False == 0, but not as text
    out = encoder.transform([new])
    assert list(np.argmax(out, axis=1)) == [1, 0, 0, 0, 3, 3, 2]


def test_a_table_of_numbers_takes_the_recipe_too_and_an_array_the_plain_defaults():
    """dp.fit's default for a table is the tabular recipe whatever its columns hold (it won on
    the development suite's tables of numbers as on mixed ones); an array keeps the plain defaults."""
    from deltaprop.training.recipe import TABLE_RECIPE as R

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"size": rng.lognormal(3, 1, 300), "rooms": rng.integers(1, 6, 300).astype(float)})
    y = np.where(df["size"] > 20, "big", "small")
    model, state = dp.fit(df, y, seed=0, epochs=8)
    assert model.network.members == R["members"] and model.network.sizes[1:-1] == list(R["hidden"])
    assert model.table is not None and len(model.table.columns[0].edges) == R["bins"] + 1
    assert state.settings["label_smoothing"] == R["label_smoothing"] and not np.isnan(state.history.val_loss).any()
    plain, plain_state = dp.fit(df.to_numpy(), y, seed=0, epochs=8)
    assert plain.network.members == 1 and plain.table is None and plain.network.sizes[1:-1] == [128, 64]
    assert "label_smoothing" not in plain_state.settings and np.isnan(plain_state.history.val_loss).all()
