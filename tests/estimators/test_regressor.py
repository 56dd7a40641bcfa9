"""MLPRegressor: scikit-learn's behaviour, and what deltaprop adds."""

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import make_friedman1

import deltaprop as dp
from deltaprop import MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def friedman():
    return make_friedman1(n_samples=300, noise=0.3, random_state=0)


def test_one_output_is_one_dimensional_and_scores_r2(friedman):
    X, y = friedman
    reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=300, random_state=0).fit(X, y)
    assert reg.out_activation_ == "identity" and reg.n_outputs_ == 1
    pred = reg.predict(X)
    assert pred.shape == (len(X),)
    assert reg.score(X, y) > 0.9


def test_several_outputs(friedman):
    X, y = friedman
    Y = np.stack([y, -2 * y + 1], axis=1)
    reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=300, random_state=0).fit(X, Y)
    assert reg.n_outputs_ == 2 and reg.predict(X).shape == (len(X), 2)
    assert reg.score(X, Y) > 0.9


def test_poisson_loss_predicts_positive_rates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1]))
    reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp" and np.all(reg.predict(X) > 0)
    theirs = sk.MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    assert reg.score(X, y) > theirs.score(X, y) - 0.05
    with pytest.raises(ValueError, match="negative which is not allowed for Poisson"):
        MLPRegressor(loss="poisson").fit(X, y - 1.0)


def test_loss_matches_sklearns_definition_for_one_output(friedman):
    # half the mean squared error plus alpha / (2 n) ||W||^2, from the same weights
    X, y = friedman
    ours = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=1, alpha=0.3, random_state=0).fit(X, y)
    pred = ours.predict(X)
    penalty = 0.3 / (2 * len(X)) * sum(np.sum(c * c) for c in ours.coefs_)
    np.testing.assert_allclose(ours.loss_, 0.5 * np.mean((y - pred) ** 2) + penalty, rtol=1e-10)


def test_partial_fit_continues_and_lbfgs_has_none(friedman):
    X, y = friedman
    reg = MLPRegressor(hidden_layer_sizes=(16,), random_state=0)
    for _ in range(3):
        reg.partial_fit(X, y)
    assert len(reg.loss_curve_) == 3 and reg.n_iter_ == 1 and reg.t_ == 3 * len(X)
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_sgd_learning_rate_schedules_train(friedman, schedule):
    X, y = friedman
    X = (X - X.mean(0)) / X.std(0)
    reg = MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate=schedule, learning_rate_init=0.01,
                       max_iter=100, random_state=0).fit(X, (y - y.mean()) / y.std())
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_save_and_load(friedman, tmp_path):
    X, y = friedman
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    reg.save(tmp_path / "reg.safetensors")
    np.testing.assert_allclose(dp.load(tmp_path / "reg.safetensors").predict(X), reg.predict(X))
    back = MLPRegressor.load(tmp_path / "reg.safetensors")
    assert back.loss == "squared_error" and back.score(X, y) == reg.score(X, y)


def test_verbose_prints_scikit_learns_progress_lines(friedman, capsys):
    X, y = friedman
    MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, verbose=True, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["Iteration 1", "Iteration 2", "Iteration 3"]
    assert all(line.split("loss = ")[1].replace(".", "").isdigit() for line in lines)
    MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3, verbose=True, random_state=0).fit(X, y)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")
    MLPRegressor(hidden_layer_sizes=(4,), early_stopping=True, max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert "Validation score: " in capsys.readouterr().out
