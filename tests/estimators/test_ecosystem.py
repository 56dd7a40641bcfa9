"""The estimators among scikit-learn's tools: searches, pandas, ONNX, and agreement with its MLP."""

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import load_breast_cancer, load_digits, make_friedman1
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import deltaprop as dp
from deltaprop import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_grid_search_with_two_jobs(iris):
    X, y = iris
    search = GridSearchCV(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0),
                          {"alpha": [1e-4, 1.0], "activation": ["relu", "tanh"]}, cv=3, n_jobs=2).fit(X, y)
    assert search.best_score_ > 0.9 and len(search.cv_results_["params"]) == 4
    assert isinstance(search.best_estimator_, MLPClassifier)


def test_randomized_search_over_deltaprop_extras(iris):
    X, y = iris
    search = RandomizedSearchCV(
        MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=50, random_state=0),
        {"dropout": [0.0, 0.2], "solver": ["adam", "rmsprop", "nesterov"]}, n_iter=3, cv=2, random_state=0,
    ).fit(X, y)
    assert search.best_score_ > 0.8


def test_pandas_frames_keep_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(frame, pd.Series(y))
    assert list(clf.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # as scikit-learn warns
        np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(frame.rename(columns={"petal_width": "width"}))
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0))
    pipe.set_output(transform="pandas").fit(frame, y)
    assert list(pipe[-1].feature_names_in_) == list(frame.columns)


@pytest.mark.parametrize("kind", ["int", "str", "binary", "multilabel", "regressor"])
def test_skl2onnx_converts_a_whole_pipeline(iris, kind):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    X, y = iris
    X = (X * 3 + 5).astype(np.float32)
    targets = {"int": y, "str": np.array(["setosa", "versicolor", "virginica"])[y], "binary": (y == 2) * 5 - 1,
               "multilabel": np.stack([y == 1, y == 2], axis=1).astype(int), "regressor": X[:, 0] * 2 - X[:, 1]}
    est = (MLPRegressor if kind == "regressor" else MLPClassifier)(
        hidden_layer_sizes=(8, 4), activation=["gelu", "tanh"], max_iter=40, random_state=0)
    pipe = make_pipeline(StandardScaler(), est).fit(X, targets[kind])
    options = {} if kind == "regressor" else {id(est): {"zipmap": False}}
    session = ort.InferenceSession(to_onnx(pipe, X[:1], options=options).SerializeToString())
    outputs = session.run(None, {session.get_inputs()[0].name: X})
    if kind == "regressor":
        np.testing.assert_allclose(outputs[0][:, 0], pipe.predict(X), rtol=1e-4, atol=1e-4)
        return
    labels, proba = outputs
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-5)


def _mean_scores(make, X, y, seeds=5):
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    return np.mean([make(seed).fit(Xtr, ytr).score(Xte, yte) for seed in range(seeds)])


DATA = {
    "digits": lambda: (load_digits().data / 16, load_digits().target),
    "breast_cancer": lambda: (StandardScaler().fit_transform(load_breast_cancer().data), load_breast_cancer().target),
    "friedman1": lambda: _standardized_target(*make_friedman1(n_samples=600, noise=0.5, random_state=0)),
}


def _standardized_target(X, y):
    return X, (y - y.mean()) / y.std()


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("data", list(DATA))
def test_no_worse_than_sklearn_over_five_seeds(data, solver):
    """Mean test score over 5 seeds, same data and hyperparameters: not below scikit-learn's
    by more than 1 point of accuracy or 0.02 of R^2.

    One-sided on purpose: on these test sets one row is 0.2 to 0.7 points, so two means of 5
    seeds differ by about a point by chance alone; the benchmark reports the signed
    differences (benchmarks/estimators.py).
    """
    X, y = DATA[data]()
    regression = data == "friedman1"
    # plain SGD at scikit-learn's default rate is far from converged after 100 epochs, where the
    # initial draw decides the score (40 other seeds put deltaprop 1.3 points ahead there)
    settings = dict(hidden_layer_sizes=(32,), solver=solver, max_iter=100,
                    learning_rate_init=0.01 if solver == "sgd" else 0.001)
    ours = _mean_scores(lambda s: (MLPRegressor if regression else MLPClassifier)(random_state=s, **settings), X, y)
    theirs = _mean_scores(
        lambda s: (sk.MLPRegressor if regression else sk.MLPClassifier)(random_state=s, **settings), X, y)
    assert ours >= theirs - (0.02 if regression else 0.01), (ours, theirs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", list(dp.ACTIVATIONS))
def test_every_activation_exports_in_either_precision(iris, activation, dtype):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    X, _ = iris
    X = (X * 3).astype(dtype)
    reg = MLPRegressor(hidden_layer_sizes=(8,), activation=activation, max_iter=5, random_state=0).fit(X, X[:, 0])
    session = ort.InferenceSession(to_onnx(reg, X[:1]).SerializeToString())
    out = session.run(None, {session.get_inputs()[0].name: X})[0]
    assert out.dtype == dtype
    np.testing.assert_allclose(out[:, 0], reg.predict(X), rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
