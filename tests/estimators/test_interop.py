"""The drop-in's last mile: what other projects do with scikit-learn's MLP, done with deltaprop's.

skops (scikit-learn's recommended safe format), emlearn (C code for microcontrollers) and
nyoka (PMML) read a fitted MLP; copy.deepcopy and pickle are what hummingbird-ml, joblib
and every search do with one; sparse inputs are what TF-IDF pipelines pass. The libraries
are the ``interop`` extra (in the test extra): without them these tests are skipped here
and fail in CI.
"""

import copy
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as sk
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from conftest import need
from deltaprop import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(X_IRIS)


def fitted():
    """One of each kind of fitted estimator: every solver family, per-layer activations."""
    return {
        "adam": MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X_IRIS, Y_IRIS),
        "lbfgs": MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, random_state=0).fit(
            X_IRIS, Y_IRIS),
        "layers": MLPClassifier(hidden_layer_sizes=(8, 4), activation=["gelu", "tanh"], max_iter=20,
                                random_state=0).fit(X_IRIS, np.array(["a", "b", "c"])[Y_IRIS]),
        "regressor": MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", max_iter=20, random_state=0).fit(
            X_IRIS[:, 1:], X_IRIS[:, 0]),
    }


def same_answers(a, b):
    if isinstance(a, MLPClassifier):
        np.testing.assert_array_equal(a.predict_proba(X_IRIS), b.predict_proba(X_IRIS))
        np.testing.assert_array_equal(a.predict(X_IRIS), b.predict(X_IRIS))
    else:
        np.testing.assert_array_equal(a.predict(X_IRIS[:, 1:]), b.predict(X_IRIS[:, 1:]))


def skops_round_trip(est):
    sio = need("skops.io")
    data = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=data)
    assert all(t.startswith("deltaprop.") for t in untrusted), untrusted  # nothing but deltaprop's own classes
    return sio.loads(data, trusted=untrusted)


ROUND_TRIPS = {"deepcopy": copy.deepcopy, "pickle": lambda e: pickle.loads(pickle.dumps(e)),
               "skops": skops_round_trip}


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_a_fitted_estimator_round_trips_and_trains_on_as_the_original(how):
    for name, est in fitted().items():
        back = ROUND_TRIPS[how](est)
        same_answers(est, back)
        if name != "lbfgs":  # and it trains on exactly as the original does
            X, y = (X_IRIS, est.classes_[Y_IRIS]) if name != "regressor" else (X_IRIS[:, 1:], X_IRIS[:, 0])
            est.partial_fit(X, y)
            back.partial_fit(X, y)
            same_answers(est, back)


def test_emlearn_converts_it(tmp_path, monkeypatch):
    settings = np.geterr()
    emlearn = need("emlearn")
    np.seterr(**settings)  # its import sets np.seterr(all="raise") for the whole process
    monkeypatch.chdir(tmp_path)  # it compiles the C code it writes under ./tmp
    for activation in ("relu", "tanh", "logistic"):
        clf = MLPClassifier(hidden_layer_sizes=(8,), activation=activation, max_iter=200, random_state=0)
        clf.fit(X_IRIS, Y_IRIS)
        c = emlearn.convert(clf, method="loadable")
        np.testing.assert_array_equal(c.predict(X_IRIS), clf.predict(X_IRIS))


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_numpys_global_error_settings_change_nothing(solver):
    # as after `import emlearn`, which sets np.seterr(all="raise"): an underflow once raised
    from sklearn.datasets import load_breast_cancer
    from sklearn.pipeline import make_pipeline

    X, y = load_breast_cancer(return_X_y=True)

    def run():
        pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), activation="relu",
                                                             solver=solver, max_iter=100, random_state=0))
        return pipe.fit(X, y).predict_proba(X * 100)

    plain = run()
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(run(), plain)


def test_nyoka_writes_its_pmml(tmp_path):
    need("nyoka")
    from nyoka import skl_to_pmml
    from sklearn.pipeline import Pipeline

    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    pipe = Pipeline([("mlp", clf)]).fit(X_IRIS, Y_IRIS)
    skl_to_pmml(pipe, [f"x{j}" for j in range(4)], "species", str(tmp_path / "m.pmml"))
    text = (tmp_path / "m.pmml").read_text()
    assert text.count("<Neuron ") == 8 + 3 and f'{clf.coefs_[0][0, 0]:.6g}'[:6] in text


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_inputs_train_as_their_dense_rows(fmt, solver):
    rng = np.random.default_rng(0)
    X = sp.random(300, 40, density=0.1, format=fmt, random_state=1)
    y = (X @ rng.normal(size=40) > 0).astype(int)
    kw = dict(hidden_layer_sizes=(16,), solver=solver, max_iter=15, random_state=0)
    sparse, dense = MLPClassifier(**kw).fit(X, y), MLPClassifier(**kw).fit(X.toarray(), y)
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X.toarray()), rtol=1e-9)
    reg = MLPRegressor(**kw).fit(X, y * 2.0)
    np.testing.assert_allclose(reg.predict(X), reg.predict(X.toarray()), rtol=1e-9)


def test_sparse_inputs_are_never_densified():
    """200,000 TF-IDF-like columns: dense, X alone would be 1.6 GB."""
    X = sp.random(2000, 200_000, density=5e-5, format="csr", random_state=0, dtype=np.float32)
    y = np.asarray(X.sum(axis=1)).ravel() > np.median(np.asarray(X.sum(axis=1)))
    tracemalloc.start()
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    clf.predict(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6, peak


def test_invalid_parameters_raise_sklearns_own_error():
    from sklearn.utils._param_validation import InvalidParameterError

    from deltaprop.estimators import InvalidParameterError as ours

    assert issubclass(ours, InvalidParameterError)
    with pytest.raises(InvalidParameterError, match="'alpha' parameter of MLPRegressor must be a float"):
        MLPRegressor(alpha=-1).fit(X_IRIS, Y_IRIS)
    with pytest.raises(InvalidParameterError, match="'activation' parameter .* Got \\['relu', 'swish'\\]"):
        MLPClassifier(hidden_layer_sizes=(4, 4), activation=["relu", "swish"]).fit(X_IRIS, Y_IRIS)


def test_a_single_class_is_fitted_as_sklearn_fits_it():
    pd = need("pandas")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(10, 2)), columns=["a", "b"])
    y = pd.Series(np.full(10, 1), name="y")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # (no feature-name warning either)
        ours = MLPClassifier(early_stopping=True, validation_fraction=0.2, random_state=0).fit(X, y)
        theirs = sk.MLPClassifier(early_stopping=True, validation_fraction=0.2, random_state=0).fit(X, y)
        assert ours.predict(X).tolist() == theirs.predict(X).tolist() == [1] * 10
    assert ours.classes_.tolist() == [1] and ours.predict_proba(X).shape == theirs.predict_proba(X).shape
    assert list(ours.feature_names_in_) == ["a", "b"]


def test_a_diverging_run_with_early_stopping_ends_with_a_warning_and_its_best_weights():
    X, y = load_iris(return_X_y=True)
    kw = dict(hidden_layer_sizes=(100,), activation="identity", solver="sgd", learning_rate_init=1, max_iter=20,
              random_state=0)
    reg = MLPRegressor(early_stopping=True, **kw)
    with pytest.warns(ConvergenceWarning, match="diverged at epoch"):
        reg.fit(X, y)
    assert str(reg.validation_scores_[-1]) == "nan" and isinstance(reg.validation_scores_[-1], float)
    assert len(reg.validation_scores_) == reg.n_iter_ == len(reg.loss_curve_)
    assert all(np.isfinite(W).all() for W in reg.coefs_) and np.isfinite(reg.predict(X)).all()
    with pytest.raises(ValueError, match="non-finite parameter weights"):  # without early stopping, as sklearn
        MLPRegressor(**kw).fit(X, y)


def test_the_early_stopping_split_is_sklearns():
    """Stratified on the one 0/1 output as scikit-learn does it (its message names the
    class 'True'), and for an int random_state the same rows."""
    with pytest.raises(ValueError, match=r"Classes with too few members are: \['True'\]"):
        MLPClassifier(early_stopping=True).fit([[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1])
    y = (Y_IRIS == 2).astype(int)
    ours = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=3, random_state=5).fit(X_IRIS, y)
    theirs = sk.MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=3, random_state=5).fit(
        X_IRIS, y)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_an_int_random_state_starts_from_sklearns_weights(activation):
    """The same initial weights, so that L-BFGS (deterministic) ends where scikit-learn's does."""
    kw = dict(hidden_layer_sizes=(8,), activation=activation, solver="lbfgs", random_state=3)
    # one iteration: the same numbers; fifty: L-BFGS amplifies the rounding of the activations
    for max_iter, rtol in ((1, 1e-12), (50, 1e-4)):
        ours = MLPClassifier(max_iter=max_iter, **kw).fit(X_IRIS, Y_IRIS)
        theirs = sk.MLPClassifier(max_iter=max_iter, **kw).fit(X_IRIS, Y_IRIS)
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)
        assert ours.n_iter_ == theirs.n_iter_ and ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


def test_a_bad_value_in_sparse_inputs_is_named_by_row_and_column():
    import scipy.sparse as sp

    import deltaprop as dp

    X = sp.random(6, 4, density=0.5, format="lil", random_state=0, dtype=np.float64)
    X[3, 1] = np.inf
    net = dp.Network([4, 3, 1], likelihood="bernoulli")
    with pytest.raises(ValueError, match=r"X \(column 1\): expected finite values, found inf at row 3"):
        net.check_X(X.tocsr())
    X[3, 1] = 1e300
    with pytest.raises(ValueError, match=r"X \(column 1\): 1e\+300 at row 3 is beyond the range of float32"):
        MLPClassifier(dtype="float32").fit(X.tocsr(), [0, 1] * 3)
