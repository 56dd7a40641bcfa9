"""MLPClassifier: scikit-learn's behaviour, and what deltaprop adds."""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import sklearn.neural_network as sk
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import deltaprop as dp
from deltaprop import MLPClassifier
from deltaprop.estimators import InvalidParameterError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_cross_val_score_of_a_pipeline(iris):
    X, y = iris
    scores = cross_val_score(make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)),
                             X, y, cv=3)
    assert scores.mean() > 0.9


@pytest.mark.parametrize("labels", [np.array(["setosa", "versicolor", "virginica"]), np.array([-1, 1, 7]),
                                    np.array(["no", "maybe", "yes"], dtype=object)], ids=["str", "int", "object"])
def test_labels_come_back_in_their_own_type(iris, labels):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, labels[y])
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred.tolist()) <= set(labels.tolist())
    assert list(clf.classes_) == sorted(labels.tolist())
    assert np.mean(pred == labels[y]) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], pred)


def test_binary_labels_give_one_sigmoid_and_two_probability_columns(iris):
    X, y = iris
    y = np.where(y == 0, -1, 1)
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 1 and clf.coefs_[-1].shape == (8, 1)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))


def test_multilabel_targets(iris):
    X, y = iris
    Y = np.stack([y == 0, y == 2, X[:, 0] > 0], axis=1).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0, max_iter=300).fit(X, Y)
    assert clf.out_activation_ == "logistic" and list(clf.classes_) == [0, 1, 2]
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert clf.score(X, Y) > 0.8  # subset accuracy


def test_fitted_attributes_follow_sklearns_layout(iris):
    X, y = iris
    ours = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=20, random_state=0).fit(X, y)
    theirs = sk.MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=20, random_state=0).fit(X, y)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_", "n_iter_", "t_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    assert len(ours.loss_curve_) == 20 and ours.loss_ == ours.loss_curve_[-1]
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None


def test_coefs_and_intercepts_are_views_of_the_network(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    W1 = clf.model_.network.W[1]
    assert np.shares_memory(clf.coefs_[0], W1) and np.shares_memory(clf.intercepts_[0], W1)
    np.testing.assert_array_equal(clf.coefs_[0], W1[:-1])
    np.testing.assert_array_equal(clf.intercepts_[0], W1[-1])
    # scikit-learn's forward pass on coefs_/intercepts_ gives the estimator's probabilities
    h = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0)
    z = h @ clf.coefs_[1] + clf.intercepts_[1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(axis=1, keepdims=True), clf.predict_proba(X), rtol=1e-6, atol=1e-9)
    clf.intercepts_ = [np.zeros(8), np.array([0.0, 0.0, 1e6])]  # assignment reaches the model
    assert np.all(clf.predict(X) == 2)


def test_lbfgs_honours_max_iter_and_warns_like_sklearn(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf = MLPClassifier(solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3
    assert not hasattr(clf, "loss_curve_")  # as scikit-learn: a stochastic solver's record
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
        clf.partial_fit(X, y)
    assert "partial_fit is only available for stochastic optimizers" in str(error.value.__cause__)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_stochastic_solver_warns_at_max_iter_only_when_not_stopped(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(5\) reached"):
        MLPClassifier(max_iter=5, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier(max_iter=500, tol=0.1, n_iter_no_change=2, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500


def test_partial_fit_n_times_is_fit_of_n_epochs_bit_for_bit(iris):
    X, y = iris
    settings = dict(hidden_layer_sizes=(16,), batch_size=32, random_state=3)
    fitted = MLPClassifier(max_iter=4, **settings).fit(X, y)
    online = MLPClassifier(**settings)
    for _ in range(4):
        online.partial_fit(X, y, classes=np.unique(y))
    assert online.t_ == fitted.t_ == 4 * len(X)
    assert online.loss_curve_ == fitted.loss_curve_
    for a, b in zip(online.coefs_ + online.intercepts_, fitted.coefs_ + fitted.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_warm_start_keeps_the_adam_moments(iris):
    X, y = iris
    settings = dict(hidden_layer_sizes=(16,), random_state=0, batch_size=50)
    straight = MLPClassifier(max_iter=6, **settings).fit(X, y)
    warm = MLPClassifier(max_iter=2, warm_start=True, **settings).fit(X, y)
    warm.set_params(max_iter=4).fit(X, y)
    # six epochs in one run or in two: the same weights, which needs Adam's moments and step count kept
    np.testing.assert_array_equal(warm.model_.network.theta, straight.model_.network.theta)
    assert warm.loss_curve_ == straight.loss_curve_ and warm.n_iter_ == 4


def test_partial_fit_needs_classes_first_and_refuses_new_labels(iris):
    X, y = iris
    clf = MLPClassifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # labels may be missing from a batch
    assert list(clf.classes_) == [0, 1, 2] and clf.n_outputs_ == 3
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clf.set_params(early_stopping=True).partial_fit(X, y)


def test_early_stopping_records_and_restores_the_best_epoch(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=3, max_iter=300,
                        learning_rate_init=0.05, random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_) < 300
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    assert len(clf.validation_loss_curve_) == clf.n_iter_ and all(np.isfinite(clf.validation_loss_curve_))


def test_class_weight_shifts_predictions_towards_the_rare_class():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2))
    y = (X[:, 0] + 0.8 * rng.normal(size=600) > 1.3).astype(int)  # about 12% positives, overlapping
    plain = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    balanced = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, class_weight="balanced").fit(X, y)
    heavy = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, class_weight={0: 1, 1: 10}).fit(X, y)
    recall = [np.mean(m.predict(X)[y == 1] == 1) for m in (plain, balanced, heavy)]
    assert recall[0] < recall[1] and recall[0] < recall[2]
    assert np.mean(balanced.predict(X)) > np.mean(plain.predict(X))


def test_sample_weight_two_equals_a_duplicated_row(iris):
    X, y = iris
    rows = np.arange(0, 150, 3)
    w = np.ones(len(X))
    w[rows] = 2
    # (20 iterations: L-BFGS amplifies the rounding of a sum taken in another order)
    weighted = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, max_iter=20).fit(X, y, w)
    X2, y2 = np.vstack([X, X[rows]]), np.concatenate([y, y[rows]])
    duplicated = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, max_iter=20).fit(X2, y2)
    np.testing.assert_allclose(weighted.model_.network.theta, duplicated.model_.network.theta, rtol=1e-7, atol=1e-9)
    assert abs(weighted.loss_ - duplicated.loss_) < 1e-10


def test_dropout_changes_training_but_not_prediction_scale(iris):
    X, y = iris
    settings = dict(hidden_layer_sizes=(32,), max_iter=30, learning_rate_init=0.01, random_state=0)
    plain = MLPClassifier(**settings).fit(X, y)
    dropped = MLPClassifier(dropout=0.5, **settings).fit(X, y)
    assert not np.array_equal(plain.model_.network.theta, dropped.model_.network.theta)
    assert dropped.score(X, y) > 0.8
    with pytest.raises(InvalidParameterError, match="'dropout' parameter .* must be 0 with solver='lbfgs'"):
        MLPClassifier(solver="lbfgs", dropout=0.2).fit(X, y)


@pytest.mark.parametrize("kwargs", [dict(alpha=-1), dict(max_iter=0), dict(shuffle=3), dict(batch_size=0),
                                    dict(learning_rate_init=0), dict(tol=-1.0), dict(beta_1=1.0),
                                    dict(epsilon=0.0), dict(max_fun=0), dict(n_iter_no_change=0),
                                    dict(verbose="x")], ids=str)
def test_invalid_hyperparameters_are_reported_as_sklearn_reports_them(iris, kwargs):
    X, y = iris
    with pytest.raises(ValueError) as theirs:
        sk.MLPClassifier(**kwargs).fit(X, y)
    with pytest.raises(InvalidParameterError) as ours:
        MLPClassifier(**kwargs).fit(X, y)
    assert isinstance(ours.value, TypeError)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("labels", [["a", 1, "b"], ["a", 2.5, None]], ids=str)
def test_mixed_label_types_are_refused_as_sklearn_refuses_them(iris, labels):
    X, y = iris
    labels = np.array(labels, dtype=object)[y]
    with pytest.raises(Exception) as theirs:
        sk.MLPClassifier().fit(X, labels)
    with pytest.raises(type(theirs.value), match=str(theirs.value)[:20]):
        MLPClassifier().fit(X, labels)


def test_unknown_names_list_every_deltaprop_choice(iris):
    X, y = iris
    with pytest.raises(InvalidParameterError, match="'solver' parameter of MLPClassifier must be a str among .*'rmsprop'"):
        MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(InvalidParameterError, match="'activation' parameter .*'gelu'"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        MLPClassifier(hidden_layer_sizes=(4, 0)).fit(X, y)


def test_deltaprop_solvers_and_per_layer_activations(iris):
    X, y = iris
    for solver in ("momentum", "nesterov", "adagrad", "rmsprop", "adamw"):
        clf = MLPClassifier(hidden_layer_sizes=(16, 8), activation=["tanh", "gelu"], solver=solver,
                            learning_rate_init=0.01, max_iter=100, random_state=0).fit(X, y)
        assert clf.score(X, y) > 0.85, solver
        assert clf.model_.network.activation_names == ["tanh", "gelu"]


def test_dtype_follows_the_input_unless_set(iris):
    X, y = iris
    assert MLPClassifier(max_iter=2).fit(X.astype(np.float32), y).coefs_[0].dtype == np.float32
    assert MLPClassifier(max_iter=2).fit(X, y).coefs_[0].dtype == np.float64
    assert MLPClassifier(max_iter=2).fit(X.astype(int), y).coefs_[0].dtype == np.float64
    clf = MLPClassifier(max_iter=2, dtype="float32").fit(X, y)
    assert clf.coefs_[0].dtype == np.float32
    # predictions in the precision of the input, as scikit-learn's checks expect
    assert clf.predict_proba(X).dtype == np.float64 and clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    reg = dp.MLPRegressor(max_iter=2, dtype="float32").fit(X, np.stack([y, -y], axis=1))
    assert reg.predict(X).dtype == np.float64 and reg.predict(X.astype(np.float32)).dtype == np.float32


def test_random_state_reproduces_and_none_does_not_touch_numpys_global_state(iris):
    X, y = iris
    a = MLPClassifier(max_iter=3, random_state=5).fit(X, y)
    b = MLPClassifier(max_iter=3, random_state=5).fit(X, y)
    np.testing.assert_array_equal(a.model_.network.theta, b.model_.network.theta)
    before = np.random.get_state()[1].copy()
    MLPClassifier(max_iter=2).fit(X, y)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_unfitted_estimator_raises_not_fitted(iris):
    X, _ = iris
    for method in ("predict", "predict_proba", "predict_log_proba"):
        with pytest.raises(NotFittedError):
            getattr(MLPClassifier(), method)(X)
    assert not hasattr(MLPClassifier(), "coefs_")


def test_pickle_and_clone(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    again.partial_fit(X, y)  # the training state came along: training goes on
    assert again.t_ == clf.t_ + len(X)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")


def test_save_load_and_the_command_line(iris, tmp_path):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, labels)
    path = tmp_path / "clf.safetensors"
    clf.save(path)
    model = dp.load(path)
    np.testing.assert_array_equal(model.predict(X), clf.predict(X))
    assert model.metadata["estimator"] == "MLPClassifier"
    back = MLPClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.n_features_in_ == 4 and list(back.classes_) == ["setosa", "versicolor", "virginica"]
    assert back.score(X, labels) == clf.score(X, labels)


def test_a_model_trained_by_the_library_becomes_an_estimator(iris):
    X, y = iris
    model, _ = dp.fit(X * 10 + 3, y, hidden=[8], epochs=30, seed=0)  # a standardizing Model
    clf = MLPClassifier.from_model(model)
    np.testing.assert_array_equal(clf.predict(X * 10 + 3), model.predict(X * 10 + 3))
    assert clf.hidden_layer_sizes == (8,) and clf.n_layers_ == 3
    clf.set_params(warm_start=True, max_iter=5).fit(X * 10 + 3, y)  # trains on through the standardizer
    assert clf.score(X * 10 + 3, y) > 0.8
    with pytest.raises(ValueError, match="not an MLPRegressor"):
        dp.MLPRegressor.from_model(model)


def test_files_go_both_ways_with_the_command_line(tmp_path):
    import subprocess
    import sys

    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    clf.save(tmp_path / "est.safetensors")
    cli = [sys.executable, "-m", "deltaprop"]
    out = subprocess.run(cli + ["evaluate", str(tmp_path / "est.safetensors"), "--data", "iris"],
                         capture_output=True, text=True, check=True).stdout
    assert f"accuracy: {clf.score(X, y):.4f} (150 samples)" in out
    subprocess.run(cli + ["train", "--data", "iris", "--hidden", "8", "--epochs", "3", "--quiet", "--out",
                          str(tmp_path / "cli.safetensors")], capture_output=True, text=True, check=True,
                   cwd=tmp_path)
    from_cli = MLPClassifier.load(tmp_path / "cli.safetensors")
    np.testing.assert_array_equal(from_cli.predict(X), dp.load(tmp_path / "cli.safetensors").predict(X))


def test_training_goes_on_from_the_weights_as_they_are(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0).fit(X, y)
    clf.set_params(solver="lbfgs", max_iter=50).fit(X, y)
    after_lbfgs = clf.loss_
    clf.set_params(solver="adam", max_iter=1, learning_rate_init=1e-6).fit(X, y)
    assert clf.loss_ < after_lbfgs * 1.5  # not back at the weights the adam run had left
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]
    clf.partial_fit(X, y)
    assert np.abs(clf.coefs_[0]).max() < 1e-3  # one tiny step from the zeros just set


def test_early_stopping_ends_with_the_weights_of_the_best_epoch(iris):
    X, y = iris
    settings = dict(hidden_layer_sizes=(16,), early_stopping=True, tol=0.0, learning_rate_init=0.05,
                    batch_size=16, random_state=1)
    stopped = MLPClassifier(n_iter_no_change=4, max_iter=300, **settings).fit(X, y)
    best = int(np.argmax(stopped.validation_scores_))  # the first epoch with the best score
    assert best < stopped.n_iter_ - 1
    # the same run cut after the best epoch: its last weights are the best epoch's
    cut = MLPClassifier(n_iter_no_change=1000, max_iter=best + 1, **settings).fit(X, y)
    assert cut.validation_scores_ == stopped.validation_scores_[:best + 1]
    np.testing.assert_array_equal(stopped.model_.network.theta, cut.model_.network.theta)


SKLEARN_ACTIVATIONS = {"identity": lambda z: z, "logistic": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh,
                       "relu": lambda z: np.maximum(z, 0)}


@settings(max_examples=15, deadline=None)
@given(hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3), activation=st.sampled_from(list(SKLEARN_ACTIVATIONS)),
       n_classes=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_coefs_and_intercepts_are_the_whole_predictor(hidden, activation, n_classes, seed):
    """scikit-learn's forward pass, written on coefs_ and intercepts_, gives predict_proba."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, 3))
    y = np.arange(12) % n_classes
    clf = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=2, random_state=seed).fit(X, y)
    h = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = SKLEARN_ACTIVATIONS[activation](h @ W + b)
    z = h @ clf.coefs_[-1] + clf.intercepts_[-1]
    if n_classes == 2:
        p = 1 / (1 + np.exp(-z))
        proba = np.hstack([1 - p, p])
    else:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-9, atol=1e-12)


def test_learning_rate_schedules_act_on_every_solver_but_the_adam_family(iris):
    X, y = iris

    def theta(**kwargs):
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, batch_size=50, learning_rate_init=0.01,
                            random_state=0, **kwargs).fit(X, y)
        return clf.model_.network.theta

    for solver in ("adam", "adamw"):  # as scikit-learn's 'adam': learning_rate_init throughout
        np.testing.assert_array_equal(theta(solver=solver, learning_rate="invscaling"), theta(solver=solver))
    for solver in ("sgd", "rmsprop", "nesterov"):
        assert not np.array_equal(theta(solver=solver, learning_rate="invscaling"), theta(solver=solver)), solver


@pytest.mark.parametrize("solver,changed", [
    ("sgd", dict(nesterovs_momentum=False)), ("sgd", dict(momentum=0.5)), ("momentum", dict(momentum=0.5)),
    ("nesterov", dict(momentum=0.5)), ("adagrad", dict(epsilon=0.5)), ("rmsprop", dict(epsilon=0.5)),
    ("adam", dict(beta_1=0.5)), ("adam", dict(beta_2=0.5)), ("adam", dict(epsilon=0.5)), ("adamw", dict(beta_1=0.5)),
], ids=str)
def test_solver_settings_reach_the_optimizer(iris, solver, changed):
    X, y = iris
    settings = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=3, batch_size=50, random_state=0)
    plain = MLPClassifier(**settings).fit(X, y).model_.network.theta
    assert not np.array_equal(MLPClassifier(**settings, **changed).fit(X, y).model_.network.theta, plain)


def test_onnx_nocl_option_gives_class_indices(iris):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    X, y = iris
    X = X.astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    onx = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False, "nocl": True}})
    session = ort.InferenceSession(onx.SerializeToString())
    labels, _ = session.run(None, {session.get_inputs()[0].name: X})
    np.testing.assert_array_equal(labels, np.argmax(clf.predict_proba(X), axis=1))
