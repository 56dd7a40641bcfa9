"""The names and order of a model's input columns, and the name of its target.

A model trained on a named table (a CSV or Parquet file's header, a DataFrame's
columns, Parquet blocks) records them as :class:`Columns`, part of the model and of
its file. At prediction a named table is matched by name: the same columns in another
order give the same answers, and missing, extra or renamed columns are an error that
names them. An unnamed array is taken in order (the network checks its width).

A *named table* is anything with string column names that gives a column by name:
a pandas or polars DataFrame, a pyarrow Table, or a dict of 1-D arrays (what the
command line builds from a CSV file, so that it needs no table library).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..validation import is_sparse

Array = np.ndarray


def table_names(X) -> list[str] | None:
    """The column names of a named table, or None for an array (or a table whose
    columns are not all named by strings, such as a DataFrame made from an array)."""
    if isinstance(X, np.ndarray):
        return None
    if isinstance(X, Mapping):
        names = list(X.keys())
    else:
        names = getattr(X, "column_names", None)  # pyarrow
        if names is None:
            names = getattr(X, "columns", None)  # pandas, polars
        if names is None:
            return None
        names = list(names)
    return names if names and all(isinstance(c, str) for c in names) else None


def to_array(X, names: list[str] | None = None) -> Array:
    """A table's values as a 2-D array, its columns in ``names``' order (default: its own)."""
    names = table_names(X) if names is None else names
    if names is None:
        return X if is_sparse(X) else np.asarray(X)
    if hasattr(X, "to_numpy") and not isinstance(X, Mapping):  # pandas: one conversion, not one per column
        try:
            return X[list(names)].to_numpy()
        except (TypeError, KeyError):
            pass
    return np.column_stack([np.asarray(X[c]) for c in names]) if names else np.empty((0, 0))


@dataclass(frozen=True)
class Columns:
    """The input columns of a model (names, in the network's input order) and its target column(s).

    Parameters
    ----------
    features : sequence of str
        One name per input of the network, distinct and non-empty.
    target : sequence of str
        The target column(s) the model was trained to predict (may be empty).
    """

    features: tuple
    target: tuple = ()

    def __post_init__(self):
        features, target = tuple(self.features), tuple(self.target)
        for what, names in (("features", features), ("target", target)):
            if not all(isinstance(c, str) and c for c in names):
                raise ValueError(f"columns: expected non-empty strings as {what} names, found {list(names)[:10]}")
            repeated = sorted({c for c in names if names.count(c) > 1})
            if repeated:
                raise ValueError(f"columns: {', '.join(map(repr, repeated))} named more than once")
        if not features:
            raise ValueError("columns: expected at least one feature name")
        both = sorted(set(features) & set(target))
        if both:
            raise ValueError(f"columns: {', '.join(map(repr, both))} is both a feature and the target")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "target", target)

    def arrange(self, X, name: str = "X"):
        """``X`` as the network's inputs: a named table's columns picked by name, in the
        model's order (its target columns, if present, left out); an array as it is.

        Raises
        ------
        ValueError
            Naming the model's columns that are missing and the table's that it does not know.
        """
        if table_names(X) is None:
            return X
        self.pick(X, name)  # (the checks)
        return to_array(X, list(self.features))

    def pick(self, X, name: str = "X", optional=()) -> list:
        """A named table's columns as 1-D arrays, in the model's order (a column named in
        ``optional`` may be absent: None stands for it); an array's columns in order.

        Raises
        ------
        ValueError
            Naming the model's columns that are missing and the table's that it does not know.
        """
        names = table_names(X)
        if names is None:
            X = np.asarray(X)
            if X.ndim != 2 or X.shape[1] != len(self.features):
                raise ValueError(f"{name}: expected a table of {len(self.features)} columns "
                                 f"({_listed(self.features)}), found shape {X.shape}")
            return [X[:, j] for j in range(X.shape[1])]
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise ValueError(f"{name}: the columns {', '.join(map(repr, repeated))} appear more than once")
        known, have = set(self.features), set(names)
        missing = [c for c in self.features if c not in have and c not in optional]
        unknown = [c for c in names if c not in known and c not in self.target]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing the model's column{'s' if len(missing) > 1 else ''} "
                             f"{_listed(missing)}")
            if unknown:
                parts.append(f"{'columns' if len(unknown) > 1 else 'column'} {_listed(unknown)} "
                             f"{'are' if len(unknown) > 1 else 'is'} not among the model's")
            hint = " (renamed?)" if missing and unknown else ""
            raise ValueError(f"{name}: {'; '.join(parts)}{hint}; the model takes {len(self.features)} columns: "
                             f"{_listed(self.features)}")
        return [_column(X, c) if c in have else None for c in self.features]

    def to_config(self) -> dict:
        return {"features": list(self.features), "target": list(self.target)}

    @classmethod
    def from_config(cls, config) -> "Columns":
        """The inverse of :meth:`to_config`, checked (ValueError otherwise)."""
        if not (isinstance(config, dict) and set(config) == {"features", "target"}
                and all(isinstance(config[k], list) for k in config)):
            raise ValueError("columns: expected {'features': [...], 'target': [...]}")
        return cls(tuple(config["features"]), tuple(config["target"]))


def _column(X, name: str) -> Array:
    """One column of a named table as a 1-D array (pandas' nullable and categorical columns
    as objects, their gaps as None or NaN)."""
    column = X[name]
    if hasattr(column, "to_numpy"):  # pandas, polars, pyarrow's ChunkedArray
        return np.asarray(column.to_numpy())
    return np.asarray(column)


def _listed(names, shown: int = 8) -> str:
    names = list(names)
    text = ", ".join(map(repr, names[:shown]))
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")
