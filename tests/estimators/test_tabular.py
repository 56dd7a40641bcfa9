"""TabularClassifier and TabularRegressor: the tabular recipe as scikit-learn estimators."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

import deltaprop as dp
from deltaprop import TabularClassifier, TabularRegressor

pd = pytest.importorskip("pandas")

STOCHASTIC = ("mini-batches: a row of weight 2 and the same row twice fall in different batches (and the "
              "held-out split differs), so the two fits differ by more than rounding")
FLOAT32 = ("predictions in float32: BLAS rounds a product of 20 rows and one of 10 differently (about 1e-7 "
           "relative), beyond this check's rtol=1e-7 for real values")


def expected_failures(estimator):
    failures = {"check_sample_weight_equivalence_on_dense_data": STOCHASTIC}
    if isinstance(estimator, TabularRegressor):
        failures["check_methods_subset_invariance"] = FLOAT32
    return failures


@parametrize_with_checks([TabularClassifier(max_epochs=20, random_state=0),
                          TabularRegressor(max_epochs=20, random_state=0)], expected_failed_checks=expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [TabularClassifier(max_epochs=2), TabularRegressor(max_epochs=2)], ids=repr)
def test_param_validation_as_sklearn_checks_its_own(estimator):
    check_param_validation(type(estimator).__name__, estimator)


def table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    price = rng.lognormal(8, 1, n)
    city = rng.choice(["Paris", "Lyon", "Nice", "Lille"], n)
    X = pd.DataFrame({"price": price, "rooms": rng.integers(1, 6, n).astype(float), "city": city,
                      "garden": rng.random(n) < 0.3, "id": [f"r{i}" for i in range(n)]})
    X.loc[rng.random(n) < 0.1, "rooms"] = np.nan
    X.loc[rng.random(n) < 0.1, "city"] = None
    good = (np.log(price) > 8) ^ (city == "Nice")
    return X, np.where(good, "good", "poor"), np.log(price) + (city == "Paris") * 2.0


def test_a_raw_table_goes_in_and_the_model_file_predicts_the_same(tmp_path):
    X, labels, values = table()
    clf = TabularClassifier(random_state=0).fit(X, labels)
    assert clf.score(X, labels) > 0.9
    assert list(clf.classes_) == ["good", "poor"]
    assert clf.model_.network.members == 4
    assert list(clf.feature_names_in_) == list(X.columns)
    clf.save(tmp_path / "clf.safetensors")
    again = dp.load(tmp_path / "clf.safetensors")
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    # columns matched by name, in any order; an unseen city goes to the shared slot
    new = X.iloc[:5][list(reversed(X.columns))].assign(city=["Brest"] * 5)
    assert clf.predict(new).shape == (5,)
    reg = TabularRegressor(random_state=0).fit(X, values)
    assert reg.score(X, values) > 0.8
    assert reg.predict(X).shape == (len(X),)


def test_the_same_seed_gives_the_same_bits_and_clone_keeps_the_parameters():
    X, labels, _ = table(n=200)
    a = TabularClassifier(random_state=3, members=2).fit(X, labels)
    b = clone(a).fit(X, labels)
    assert a.model_.network.theta.tobytes() == b.model_.network.theta.tobytes()
    assert clone(a).get_params() == a.get_params()


def test_in_a_pipeline_and_a_search():
    X, labels, _ = table(n=200)
    pipe = make_pipeline(FunctionTransformer(lambda d: d.drop(columns=["id"])),
                         TabularClassifier(max_epochs=30, random_state=0))
    search = GridSearchCV(pipe, {"tabularclassifier__members": [1, 2]}, cv=2).fit(X, labels)
    # 100 rows per fit, classes 99/101: a seed's score ranges over 0.73-0.81 here, chance is 0.5
    assert search.best_score_ > 0.65
    assert search.best_params_["tabularclassifier__members"] in (1, 2)


def test_arrays_of_mixed_values_and_of_numbers_go_in_too():
    X, labels, values = table(n=150)
    mixed = X.to_numpy(dtype=object)
    clf = TabularClassifier(max_epochs=40, random_state=0).fit(mixed, labels)
    assert clf.predict(mixed[:3]).shape == (3,)
    assert not hasattr(clf, "feature_names_in_") and clf.n_features_in_ == 5
    numbers = X[["price", "rooms"]].fillna(0).to_numpy()
    reg = TabularRegressor(max_epochs=40, random_state=0).fit(numbers, values)
    assert reg.predict(numbers).shape == (150,)


def test_few_rows_train_on_all_of_them_without_a_validation_split():
    X, labels, _ = table(n=30)
    # 10% of 30 is 3 rows: too few (cross-fitted, each of 4 members would hold out 7 or 8: tested with them)
    clf = TabularClassifier(max_epochs=7, random_state=0, cross_fit=False).fit(X, labels)
    assert clf.validation_loss_curve_ is None and clf.n_iter_ <= 7
    big = TabularClassifier(max_epochs=7, random_state=0).fit(*table(n=100)[:2])
    assert len(big.validation_loss_curve_) == big.n_iter_


def test_every_setting_is_the_estimators_own_on_a_mixed_table_too():
    X, labels, _ = table(n=200)  # (a mixed table: fit's recipe must not fill anything in)
    plain = TabularClassifier(label_smoothing=0.0, validation_fraction=None, max_epochs=80, members=1,
                              random_state=0).fit(X, labels)
    assert plain.n_iter_ == 80 and plain.validation_loss_curve_ is None  # no held-out rows, no stopping
    # unsmoothed, J goes below the floor that the recipe's smoothing (0.1) would put under it
    assert min(plain.loss_curve_) < -(0.95 * np.log(0.95) + 0.05 * np.log(0.05))
    smoothed = TabularClassifier(label_smoothing=0.2, validation_fraction=None, max_epochs=25, members=1,
                                 random_state=0).fit(X, labels)
    assert min(smoothed.loss_curve_) > -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
