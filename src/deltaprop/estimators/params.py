"""Hyperparameter checks in scikit-learn's style, done when ``fit`` is called.

scikit-learn validates an estimator's constructor arguments at ``fit`` (never in
``__init__``, so that ``clone`` and ``set_params`` stay plain) and raises one
error type, a ``ValueError`` that is also a ``TypeError``, with messages such as
``The 'alpha' parameter of MLPClassifier must be a float in the range [0.0, inf).
Got -1 instead.`` Users and tools match on both, so deltaprop's estimators raise
the same. The rules are written here as small constraint objects instead of
importing scikit-learn's private validation module.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


class InvalidParameterError(ValueError, TypeError):
    """A hyperparameter has the wrong type or value (scikit-learn raises the same kind)."""


class Constraint:
    """What a value may be: ``accepts(value)`` and a description for the message."""

    description = ""

    def accepts(self, value) -> bool:
        raise NotImplementedError


class Interval(Constraint):
    """A number of ``kind`` (Integral or Real) between ``low`` and ``high`` (None: unbounded)."""

    def __init__(self, kind, low, high, closed: str):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        left = "[" if closed in ("left", "both") else "("
        right = "]" if closed in ("right", "both") else ")"
        fmt = (lambda v: str(float(v))) if kind is Real else str
        lo = "-inf" if low is None else fmt(low)
        hi = "inf" if high is None else fmt(high)
        self.description = f"{'an int' if kind is Integral else 'a float'} in the range {left}{lo}, {hi}{right}"

    def accepts(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.kind):
            return False
        if isinstance(value, Real) and math.isnan(value):
            return False
        if self.low is not None and (value < self.low or (value == self.low and self.closed in ("right", "neither"))):
            return False
        if self.high is not None and (value > self.high or (value == self.high and self.closed in ("left", "neither"))):
            return False
        return True


class Options(Constraint):
    """One of a set of strings."""

    def __init__(self, options):
        self.options = set(options)
        self.description = f"a str among {_sorted_set(self.options)}"

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value in self.options


class Boolean(Constraint):
    description = "an instance of 'bool' or an instance of 'numpy.bool'"

    def accepts(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))


class Verbose(Constraint):
    description = "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'"

    def accepts(self, value) -> bool:
        return isinstance(value, (bool, np.bool_)) or (isinstance(value, Integral) and value >= 0)


class RandomState(Constraint):
    description = ("an int in the range [0, 4294967295], an instance of 'numpy.random.mtrand.RandomState', "
                   "an instance of 'numpy.random.Generator' or None")

    def accepts(self, value) -> bool:
        if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
            return True
        return Interval(Integral, 0, 2**32 - 1, "both").accepts(value)


class Sequence(Constraint):
    """A list or tuple whose every item passes ``item``."""

    def __init__(self, item: Constraint, what: str):
        self.item, self.description = item, what

    def accepts(self, value) -> bool:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        return isinstance(value, (list, tuple)) and len(value) > 0 and all(self.item.accepts(v) for v in value)


class InstanceOf(Constraint):
    def __init__(self, kind, name: str):
        self.kind, self.description = kind, f"an instance of '{name}'"

    def accepts(self, value) -> bool:
        return isinstance(value, self.kind)


class NoneValue(Constraint):
    description = "None"

    def accepts(self, value) -> bool:
        return value is None


class Infinity(Constraint):
    description = "a float among {inf}"

    def accepts(self, value) -> bool:
        return isinstance(value, Real) and value == math.inf


def _sorted_set(options) -> str:
    return "{" + ", ".join(repr(o) for o in sorted(options)) + "}"


def validate(estimator, constraints: dict[str, list[Constraint]]) -> None:
    """Check every parameter of ``estimator`` named in ``constraints``.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, the estimator's class, what was expected and what was found.
    """
    for name, rules in constraints.items():
        value = getattr(estimator, name)
        if any(rule.accepts(value) for rule in rules):
            continue
        descriptions = [rule.description for rule in rules]
        expected = descriptions[0] if len(descriptions) == 1 else \
            f"{', '.join(descriptions[:-1])} or {descriptions[-1]}"
        raise InvalidParameterError(
            f"The {name!r} parameter of {type(estimator).__name__} must be {expected}. Got {value!r} instead.")
