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
