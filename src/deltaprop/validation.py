"""Checks of numeric arguments at the API boundary, with errors that name the argument."""

from __future__ import annotations

import math
import os

import numpy as np


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
            expected = f"a number in [{minimum:g}, {below:g})"
        elif minimum == 0:
            expected = "a positive number" if strict else "a non-negative number"
        else:
            expected = f"a number {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name}: expected {expected}, found {value!r}")
    return float(value)


def check_weights(sample_weight, n: int) -> np.ndarray:
    """``n`` finite, non-negative sample weights with a positive sum, or a ValueError."""
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf" or w.shape != (n,):
        raise ValueError(f"sample_weight: expected {n} numbers (one per row of X), found shape {w.shape}, "
                         f"dtype {w.dtype}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight: expected finite, non-negative weights with a positive sum")
    if not w.sum() > 0:
        raise ValueError("sample_weight: every weight is zero; expected finite, non-negative weights with a "
                         "positive sum")
    return w


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
