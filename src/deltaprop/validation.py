"""Checks of numeric arguments at the API boundary, with errors that name the argument."""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["check_float", "check_fraction", "check_int", "check_weights"]


def check_int(name: str, value, minimum: int) -> int:
    """An integer >= ``minimum`` (bools refused), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, found {value!r}")
    return int(value)


def check_float(name: str, value, minimum: float, strict: bool = False, below: float | None = None) -> float:
    """A finite number >= ``minimum`` (> with ``strict``) and < ``below`` if given."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > minimum if strict else value >= minimum) \
        and (below is None or value < below)
    if not ok:
        if below is not None:
            expected = f"a number in {'(' if strict else '['}{minimum:g}, {below:g})"
        elif minimum == 0:
            expected = "a positive number" if strict else "a non-negative number"
        else:
            expected = f"a number {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name}: expected {expected}, found {value!r}")
    return float(value)


def check_fraction(name: str, value, closed_low: bool = False) -> float:
    """A fraction in (0, 1), or in [0, 1) with ``closed_low``: a share of the rows, a rate."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and (0 <= value if closed_low else 0 < value) and value < 1
    if not ok:
        raise ValueError(f"{name}: expected a fraction in {'[' if closed_low else '('}0, 1), found {value!r}")
    return float(value)


def check_weights(sample_weight, n: int, name: str = "sample_weight", members: int = 1) -> np.ndarray:
    """``n`` finite, non-negative sample weights with a positive sum, or a ValueError
    naming them as ``name``. With ``members`` > 1 (an ensemble's), shape (n, members) is
    taken too: a column of weights for each member, each with a positive sum."""
    w = np.asarray(sample_weight)
    shapes = [(n,)] + ([(n, members)] if members > 1 else [])
    if w.dtype.kind not in "biuf" or w.shape not in shapes:
        expected = f"{n} numbers (one per row of X)" + (f", or {n} rows of {members} (one per member)"
                                                        if members > 1 else "")
        raise ValueError(f"{name}: expected {expected}, found shape {w.shape}, dtype {w.dtype}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name}: expected finite, non-negative weights with a positive sum")
    sums = w.sum(axis=0)
    if not np.all(sums > 0):
        whose = "" if w.ndim == 1 else f" of member {int(np.argmin(sums > 0))}"
        raise ValueError(f"{name}: every weight{whose} is zero; expected finite, non-negative weights with a "
                         "positive sum")
    return w


def is_sparse(X) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array (told without importing SciPy)."""
    return hasattr(X, "tocsr") and hasattr(X, "nnz") and hasattr(X, "shape")


def bad_entries(a: np.ndarray, limit: float | None = None) -> np.ndarray:
    """The mask of entries of a float array that are NaN, infinite or, with ``limit``,
    beyond +-limit (computed in a type that can hold ``limit``, so that a float16 array
    compared with float32's range does not turn the bound into inf)."""
    bad = ~np.isfinite(a)
    if limit is not None and float(np.finfo(a.dtype).max) > limit:
        with np.errstate(invalid="ignore"):
            bad |= np.abs(a) > a.dtype.type(limit)
    return bad


def describe_rows(rows, unit: str = "row", index=None, shown: int = 5) -> str:
    """``row 3``, or ``rows 3, 17 and 40``, or ``rows 3, 17, 40, 41, 52 and 12 more (17 rows)``:
    0-based row indices in the user's terms: ``index[i]`` is how row i is named to the user
    (e.g. the line of a file that holds it, with ``unit="line"``)."""
    rows = [int(r) if index is None else int(index[r]) for r in rows]
    if len(rows) == 1:
        return f"{unit} {rows[0]}"
    if len(rows) <= shown:
        return f"{unit}s {', '.join(map(str, rows[:-1]))} and {rows[-1]}"
    return f"{unit}s {', '.join(map(str, rows[:shown]))} and {len(rows) - shown} more ({len(rows)} {unit}s)"


def check_values(a, name: str, dtype=None, columns=None, unit: str = "row", index=None,
                 advice: str = "dtype='float64'") -> None:
    """Refuse NaN, infinite values and, with ``dtype``, values beyond its range, naming
    the column and the rows that hold them.

    Parameters
    ----------
    a : ndarray of shape (n,) or (n, k)
        Integers pass (every integer is within a float's range).
    name : str
        What ``a`` is to the user (``"X"``, ``"y"``, a file).
    dtype : numpy dtype, optional
        The network's float type, whose range the values must fit.
    columns : list of str, optional
        The columns' names (default: their 0-based indices).
    unit, index : str, sequence of int, optional
        How rows are named to the user (see :func:`describe_rows`).
    advice : str
        What lifts the range limit, in the user's terms (``--dtype float64`` on the command line).

    Raises
    ------
    ValueError
    """
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return
    limit = None if dtype is None else float(np.finfo(dtype).max)
    if a.ndim == 2 and a.size and a.dtype.char in "fd" and (dtype is None or a.dtype.itemsize <= np.dtype(dtype).itemsize):
        # within the range by its type: only finiteness is asked. The row sums, by one
        # matrix-vector product (a BLAS pass, no array of a's size), are finite unless a row
        # holds NaN or inf (or finite values whose sum overflows: then the check below decides)
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(a @ np.ones(a.shape[1], a.dtype)).all():
                return
    elif a.ndim == 2:  # the extremes first: most data is clean, and they need no array of its size
        with np.errstate(invalid="ignore"):
            lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if np.isfinite(lo) and np.isfinite(hi) and (limit is None or (-limit <= lo and hi <= limit)):
            return
    bad = bad_entries(a, limit)
    if not bad.any():
        return
    bad2 = bad.reshape(len(a), -1)
    col = int(np.flatnonzero(bad2.any(axis=0))[0])
    rows = np.flatnonzero(bad2[:, col])
    value = a.reshape(len(a), -1)[rows[0], col]
    where = describe_rows(rows, unit, index)
    if a.ndim == 2 and a.shape[1] > 1 or columns:
        where += f", column {columns[col]!r}" if columns else f", column {col}"
        others = int(bad2.sum()) - len(rows)
        if others:
            where += f" (and {others} more in other columns)"
    if np.isfinite(value):
        raise ValueError(f"{name}: {value} at {where} is beyond the range of {np.dtype(dtype).name} "
                         f"(+-{limit:.3g}); rescale the data or use {advice}")
    raise ValueError(f"{name}: expected finite values, found {value} at {where}")


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000


def check_memory(name: str, n_bytes: int, what: str) -> None:
    """Refuse, up front and naming ``name``, an allocation larger than physical memory
    (which would otherwise end in a MemoryError traceback, or in swapping)."""
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise ValueError(f"{name}: {what} would need {format_bytes(n_bytes)} of memory, more than this "
                         f"machine's {format_bytes(total)}")
