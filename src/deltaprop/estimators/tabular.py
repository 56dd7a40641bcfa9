"""``deltaprop.TabularClassifier`` and ``deltaprop.TabularRegressor``: the tabular recipe as
scikit-learn estimators that take real tables as they are.

A pandas DataFrame (or a 2-D array, of numbers or of mixed values) goes in with its
text categories, booleans, gaps and prices in the thousands: each column's encoding
is learned at ``fit`` (:mod:`deltaprop.data.tables`) and kept in the fitted
:class:`~deltaprop.Model` (``model_``), which is the whole predictor: ``save`` writes
it, and ``deltaprop predict`` or the ONNX export answer as ``predict`` does. The
defaults are the recipe of :mod:`deltaprop.training.recipe`, chosen on the
development suite of real tables (``benchmarks/tabular.py``).

Unlike :class:`~deltaprop.MLPClassifier` (scikit-learn's MLP, parameter for
parameter), these estimators have deltaprop's own parameters, named as
:func:`deltaprop.fit` names them.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from ..core.activations import ACTIVATIONS
from ..core.network import root_seed
from ..data.tables import TableNotice
from ..optim.optimizers import Adam, AdamW
from ..training.callbacks import EarlyStopping
from ..training.crossfit import CROSS_FIT, cross_fits
from ..training.fit import fit
from ..training.recipe import TABLE_RECIPE
from .params import Interval, StrOptions
from .signature import constructor

Array = np.ndarray
R = TABLE_RECIPE
MIN_HELD_OUT = 5  # validation rows, at least: with fewer, every row trains and max_epochs are run


# the parameters and attributes both estimators have, written once, with the recipe's defaults
_SHARED = {
    "parameters": """    hidden_layer_sizes : array-like of int, default=%(hidden)s
        Each member's hidden layer widths.
    activation : str, default='relu'
        The hidden activation, any name of :data:`deltaprop.ACTIVATIONS`.
    members : int, default=%(members)s
        Networks in the ensemble, trained together (one product per layer for all of
        them): cross-fitted (see ``cross_fit``), or sharing held-out rows.
    bins : int, default=%(bins)s
        Quantile bins of each number column's piecewise-linear encoding (0: none).
    max_epochs : int, default=%(epochs)s
        The most epochs; training stops earlier when the validation loss has not
        improved for ``patience`` epochs.
    batch_size : int, default=%(batch_size)s
        Rows per step (clipped to the number of rows).
    learning_rate : float, default=%(learning_rate)s
        Adam's step size.
    weight_decay : float, default=0.0
        With a positive value, AdamW's decoupled weight decay.
    dropout : float, default=%(dropout)s
        Inverted-dropout rate on the hidden layers during training.
    validation_fraction : float or None, default=%(validation)s
        The share of rows held out (stratified by class for a classifier) to choose
        the best epoch, whose weights the model keeps; None trains ``max_epochs`` epochs
        on every row.
    cross_fit : bool, default=%(cross_fit)s
        With a validation fraction and two members or more: instead, each member holds
        out a fold of its own (1/members of the rows, stratified by class for a
        classifier) to choose its best epoch, so that every row trains all members but
        one (folds of at least 5 rows); False: all members share the held-out
        ``validation_fraction``.
    patience : int, default=%(early_stopping)s
        Epochs without a better validation loss before training stops.
""".strip() % {k: repr(v) for k, v in R.items()},
    "parameters_end": """    random_state : int, RandomState instance or None, default=None
        The seed of the weights, the split, the shuffling and dropout; an int gives
        the same bits on the same machine.
    verbose : bool, default=False
        Print a line at the end of training, and the notices about columns left out.

""".strip(),
    "attributes": """    n_features_in_ : int
        The number of columns seen at fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names, when X was a DataFrame with string names.
    n_iter_ : int
        The epochs trained.
    loss_curve_ : list of float
        The training loss of each epoch (cross-fitted members: their mean, over the
        members still training).
    validation_loss_curve_ : list of float or None
        The validation loss of each epoch (None without validation; cross-fitted
        members: the mean of each member's on its own fold).

""".strip(),
    "label_smoothing": repr(R["label_smoothing"]),
}


def _documented(cls):
    cls.__doc__ = cls.__doc__ % _SHARED
    return cls


# the tabular recipe's hyperparameters (the first two by position too), as both estimators take
# them: the shared ones, then (after a classifier's own) the last two, in the docstrings' order
TABULAR_PARAMETERS = {
    "hidden_layer_sizes": R["hidden"], "activation": "relu", "members": R["members"], "bins": R["bins"],
    "max_epochs": R["epochs"], "batch_size": R["batch_size"], "learning_rate": R["learning_rate"],
    "weight_decay": 0.0, "dropout": R["dropout"], "validation_fraction": R["validation"],
    "cross_fit": R["cross_fit"], "patience": R["early_stopping"],
}
TABULAR_END = {"random_state": None, "verbose": False}


class TabularMLP(BaseEstimator):
    """The shared machinery; use :class:`TabularClassifier` or :class:`TabularRegressor`."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "members": [Interval(Integral, 1, None, closed="left")],
        "bins": [Interval(Integral, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "cross_fit": ["boolean"],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["boolean"],
    }

    __init__ = constructor({**TABULAR_PARAMETERS, **TABULAR_END}, positional=2)

    # -- the table -------------------------------------------------------------------
    def _table(self, X, reset: bool):
        """X as a named table for the model: a DataFrame as it is (its columns matched by
        name), an array's columns named x0, x1, ... (or as the fitted DataFrame's were)."""
        if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas DataFrame
            names = getattr(self, "feature_names_in_", None)
            if not reset and names is not None and list(X.columns) != list(names) \
                    and set(X.columns) == set(names) and len(X.columns) == len(names):
                X = X[list(names)]  # the same columns in another order: matched by name
            validate_data(self, X, skip_check_array=True, reset=reset)
            if X.shape[0] == 0:
                raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
            if not all(isinstance(c, str) for c in X.columns):
                X = X.rename(columns=str)
            return X
        X = check_array(X, dtype=None, ensure_all_finite="allow-nan", accept_sparse=False)
        if X.dtype.kind not in "biufO":
            X = X.astype(object)
        validate_data(self, X, skip_check_array=True, reset=reset)
        names = getattr(self, "feature_names_in_", None)
        names = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]
        return {name: X[:, j] for j, name in enumerate(names)}

    def _fit(self, X, y, sample_weight, task: str):
        hidden = [int(h) for h in np.atleast_1d(self.hidden_layer_sizes)]
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, found {self.hidden_layer_sizes!r}")
        table = self._table(X, reset=True)
        n = len(X) if not isinstance(table, dict) else len(next(iter(table.values())))
        optimizer = AdamW(self.learning_rate, weight_decay=self.weight_decay) if self.weight_decay \
            else Adam(self.learning_rate)
        validation = self.validation_fraction
        if validation and self.cross_fit and cross_fits(self.members, n, {}):  # a fold of its own per member
            validation = CROSS_FIT
        elif validation and int(n * validation) < MIN_HELD_OUT:  # too few rows to judge an epoch by: all train
            validation = None
        # every setting given, so that fit's recipe for mixed tables fills none of them in
        options = dict(validation=validation, early_stopping=EarlyStopping(self.patience) if validation else None)
        if task == "classification":
            options["label_smoothing"] = self.label_smoothing
        with warnings.catch_warnings():
            if not self.verbose:
                warnings.simplefilter("ignore", TableNotice)
            self.model_, state = fit(
                table, y, hidden=hidden, activation=self.activation, task=task, members=self.members,
                bins=self.bins, seed=root_seed(self.random_state), epochs=self.max_epochs,
                batch_size=min(self.batch_size, n), optimizer=optimizer, dropout=self.dropout,
                sample_weight=sample_weight, **options)
        history = state.history
        self.n_iter_ = len(history.loss)
        self.loss_curve_ = list(history.loss)
        self.validation_loss_curve_ = list(history.val_loss) if validation else None
        if self.verbose:
            print(f"{type(self).__name__}: {self.n_iter_} epochs, loss {history.loss[-1]:.4g}"
                  + (f", validation loss {min(history.val_loss):.4g} (best)" if validation else ""))
        return self

    def _X(self, X):
        check_is_fitted(self, "model_")
        return self._table(X, reset=False)

    def save(self, path) -> None:
        """Write the fitted model to a file.

        The file holds the whole predictor (column handling, networks, labels) as
        safetensors, never pickle; :func:`deltaprop.load` and ``deltaprop predict`` read it.

        Parameters
        ----------
        path : str or path-like
            The ``.safetensors`` file to write (atomically).
        """
        check_is_fitted(self, "model_")
        self.model_.save(path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # gaps are data: filled and marked
        tags.input_tags.string = True  # text categories
        tags.input_tags.categorical = True
        tags.non_deterministic = self.random_state is None
        return tags


@_documented
class TabularClassifier(ClassifierMixin, TabularMLP):
    """A classifier for real tables: the tabular recipe as a scikit-learn estimator.

    Takes a pandas DataFrame (or a 2-D array) with numeric, boolean, text and missing
    values as it is; learns each column's encoding (robust scaling, smooth clipping and
    piecewise-linear bins for numbers; one-hot categories with a shared slot for rare
    and unseen values; gaps filled and marked); trains an ensemble of networks, each
    keeping its best epoch on a fold of rows it did not train on, and predicts with the
    mean of their class probabilities.

    Parameters
    ----------
    %(parameters)s
    label_smoothing : float, default=%(label_smoothing)s
        Train on class targets moved this far towards the uniform distribution
        (eq. (1) with soft targets); the validation loss is on the true labels.
    %(parameters_end)s

    Attributes
    ----------
    model_ : Model
        The fitted predictor: column encodings, networks and class labels.
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    %(attributes)s

    Examples
    --------
    >>> import pandas as pd
    >>> from deltaprop import TabularClassifier
    >>> X = pd.DataFrame({"size": [1.0, 2.5, None, 4.0] * 10, "color": ["red", "blue", "red", None] * 10})
    >>> y = ["small", "large", "small", "large"] * 10
    >>> clf = TabularClassifier(random_state=0).fit(X, y)
    >>> clf.predict(X.head(2)).tolist()
    ['small', 'large']
    """

    _parameter_constraints: dict = {**TabularMLP._parameter_constraints,
                                    "label_smoothing": [Interval(Real, 0, 1, closed="left")]}

    __init__ = constructor({**TABULAR_PARAMETERS, "label_smoothing": R["label_smoothing"], **TABULAR_END},
                           positional=2)

    def fit(self, X, y, sample_weight=None) -> "TabularClassifier":
        """Learn the columns' encodings and train the ensemble.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The raw table.
        y : array-like of shape (n_samples,)
            Class labels of any type.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row weights of the loss.

        Returns
        -------
        self : TabularClassifier
            The fitted estimator.
        """
        self._validate_params()  # scikit-learn's check of _parameter_constraints
        y = column_or_1d(_targets_given(self, y), warn=True)
        check_classification_targets(y)
        self._fit(X, y, sample_weight, "classification")
        self.classes_ = self.model_.classes
        return self

    def predict(self, X) -> Array:
        """Class labels.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw rows: columns matched by name (a DataFrame) or by position (an array).

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The most probable class of each row (of the mean probabilities).
        """
        X = self._X(X)
        return self.model_.predict(X)

    def predict_proba(self, X) -> Array:
        """Class probabilities, the members' mean, one column per class of ``classes_``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw rows: columns matched by name (a DataFrame) or by position (an array).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Each row's probabilities.
        """
        X = self._X(X)
        if len(self.classes_) == 1:  # fitted on one class
            return np.ones((len(next(iter(X.values()))) if isinstance(X, dict) else len(X), 1))
        return self.model_.predict_proba(X)

    def predict_log_proba(self, X) -> Array:
        """The logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw rows: columns matched by name (a DataFrame) or by position (an array).

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Each row's log-probabilities.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


@_documented
class TabularRegressor(RegressorMixin, TabularMLP):
    """A regressor for real tables: the tabular recipe as a scikit-learn estimator.

    As :class:`TabularClassifier`, for real targets (one column or several): they are
    standardized for training and predictions come back in their own units; the
    prediction is the mean of the members'.

    Parameters
    ----------
    %(parameters)s
    %(parameters_end)s

    Attributes
    ----------
    model_ : Model
        The fitted predictor: column encodings, networks and the target's scaling.
    %(attributes)s

    Examples
    --------
    >>> import pandas as pd
    >>> from deltaprop import TabularRegressor
    >>> X = pd.DataFrame({"rooms": [1, 2, 3, 4] * 10, "city": ["a", "b", "a", "b"] * 10})
    >>> y = [100.0, 210.0, 290.0, 420.0] * 10
    >>> reg = TabularRegressor(random_state=0).fit(X, y)
    >>> reg.predict(X.head(2)).shape
    (2,)
    """

    def fit(self, X, y, sample_weight=None) -> "TabularRegressor":
        """Learn the columns' encodings and train the ensemble.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The raw table.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Real targets.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row weights of the loss.

        Returns
        -------
        self : TabularRegressor
            The fitted estimator.
        """
        self._validate_params()  # scikit-learn's check of _parameter_constraints
        y = check_array(_targets_given(self, y), ensure_2d=False, dtype=np.float64, ensure_all_finite=False,
                        input_name="y")
        return self._fit(X, y, sample_weight, "regression")

    def predict(self, X) -> Array:
        """Predicted values in the target's units.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw rows: columns matched by name (a DataFrame) or by position (an array).

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            The members' mean prediction, in the target's units.
        """
        X = self._X(X)
        return self.model_.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _targets_given(estimator, y):
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    return y
