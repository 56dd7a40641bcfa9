"""Hyperparameter checks as scikit-learn does them, with scikit-learn's own machinery.

scikit-learn validates an estimator's constructor arguments at ``fit`` (never in
``__init__``, so that ``clone`` and ``set_params`` stay plain), from a class attribute
``_parameter_constraints``, and raises :class:`InvalidParameterError`, a ``ValueError``
that is also a ``TypeError``, with messages such as ``The 'alpha' parameter of
MLPClassifier must be a float in the range [0.0, inf). Got -1 instead.`` Users match on
that class and on those messages, and scikit-learn's own test of every estimator's
parameters (``check_param_validation``) reads the constraints to make invalid values and
expects that class: so the constraints below are scikit-learn's constraint objects, and
the error is scikit-learn's class. They live in its ``_param_validation`` module, which
scikit-learn's estimators and those of other projects use alike.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import InvalidParameterError, Interval, Options, StrOptions

__all__ = ["InvalidParameterError", "Interval", "Options", "StrOptions", "check_names"]


def check_names(estimator, name: str, value, allowed) -> None:
    """A list of names (one per hidden layer) whose every item is one of ``allowed``,
    checked as scikit-learn checks a single one.

    Raises
    ------
    InvalidParameterError
    """
    bad = [v for v in value if not (isinstance(v, str) and v in allowed)]
    if bad or not len(value):
        raise InvalidParameterError(
            f"The {name!r} parameter of {type(estimator).__name__} must be a str among "
            f"{_sorted_set(allowed)} or a non-empty list of them. Got {value!r} instead.")


def _sorted_set(options) -> str:
    return "{" + ", ".join(repr(o) for o in sorted(options)) + "}"


def mlp_constraints(activations, solvers) -> dict:
    """The constraints of the parameters that :class:`MLPClassifier` and
    :class:`MLPRegressor` share: scikit-learn's, widened to deltaprop's activations and
    solvers, and deltaprop's own (``dropout``, ``dtype``)."""
    return {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(activations)), list, tuple],
        "solver": [StrOptions(set(solvers))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}), type],
    }
