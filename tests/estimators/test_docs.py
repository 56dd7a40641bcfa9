"""The estimators' docstrings as scikit-learn's own tests check its estimators': numpydoc's
validation of the class and every public method, and one entry per fitted attribute."""

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from conftest import need
from deltaprop import MLPClassifier, MLPRegressor, TabularClassifier, TabularRegressor

# numpydoc's checks that scikit-learn's docstring test leaves out too: no "See Also", no
# extended summary, no examples on every method, and the layout rules of its own style guide
IGNORED = {"GL01", "GL02", "GL03", "GL05", "SA01", "ES01", "EX01", "SS05", "RT02"}
ESTIMATORS = [MLPClassifier, MLPRegressor]


@pytest.mark.parametrize("cls", ESTIMATORS + [TabularClassifier, TabularRegressor], ids=lambda c: c.__name__)
def test_numpydoc_validates_the_class_and_its_public_methods(cls):
    validate = need("numpydoc.validate").validate
    names = [f"deltaprop.{cls.__name__}"] + [f"deltaprop.{cls.__name__}.{m}" for m in sorted(dir(cls))
                                            if not m.startswith("_") and callable(getattr(cls, m))]
    assert len(names) > 8
    problems = {n: [e for e in validate(n)["errors"] if e[0] not in IGNORED] for n in names}
    assert {n: e for n, e in problems.items() if e} == {}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_fitted_attribute_has_its_own_entry(cls):
    docscrape = need("numpydoc.docscrape")
    doc = docscrape.ClassDoc(cls)
    documented = [a.name for a in doc["Attributes"]]
    assert all(name.isidentifier() for name in documented), documented  # one entry each, never "a, b"
    params = [p.name for p in doc["Parameters"]]
    assert params == list(inspect.signature(cls).parameters)  # every parameter, in the signature's order
    assert all(p.type and p.desc for p in doc["Parameters"])
    X, y = load_iris(return_X_y=True)
    X = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])  # so that feature_names_in_ exists
    target = y if cls is MLPClassifier else X["pl"].to_numpy() * 1.0
    est = cls(hidden_layer_sizes=(4,), max_iter=3, early_stopping=True, random_state=0)
    with pytest.warns(Warning):  # (three epochs do not converge)
        est.fit(X, target)
    fitted = {k for k in vars(est) if k.endswith("_") and not k.startswith("_")} | {"coefs_", "intercepts_"}
    assert fitted == set(documented)
    assert isinstance(est.validation_loss_curve_, list) and np.isfinite(est.best_validation_score_)


@pytest.mark.parametrize("cls", [TabularClassifier, TabularRegressor], ids=lambda c: c.__name__)
def test_every_fitted_attribute_of_the_tabular_estimators_has_its_own_entry(cls):
    docscrape = need("numpydoc.docscrape")
    doc = docscrape.ClassDoc(cls)
    assert [p.name for p in doc["Parameters"]] == list(inspect.signature(cls).parameters)
    X, y = load_iris(return_X_y=True)
    X = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    est = cls(max_epochs=3, random_state=0).fit(X, y if cls is TabularClassifier else X["pl"].to_numpy())
    fitted = {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}
    assert fitted == {a.name for a in doc["Attributes"]}
