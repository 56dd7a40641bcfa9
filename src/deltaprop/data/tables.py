"""Real tables as network inputs: numbers, booleans, text categories and gaps.

A network takes a matrix of finite numbers; a table has columns of several kinds,
and holes. :class:`TableEncoder` learns, from the training table, what each column
is and how to turn it into inputs, and applies exactly that to any later table:

- a **number** column (integers, floats, or text that is all numbers) is filled at
  its gaps with the training median and scaled robustly, ``z = (x - median) / s`` with
  ``s`` the interquartile range over 1.349 (the standard deviation of a normal
  column, but not pulled by outliers such as prices in the thousands next to a few
  in the millions), or the standard deviation, or 1 for a constant column; then
  clipped smoothly, ``z / sqrt(1 + (z/3)^2)``, so that the tail of a skewed column
  (counts, incomes) stays within +-3 instead of reaching 100; with ``bins``, also
  encoded piecewise-linearly over its training quantiles ``e_0 < ... < e_T``: input t is
  ``clip((x - e_{t-1}) / (e_t - e_{t-1}), 0, 1)``, 0 below the bin, 1 above it, so
  that a threshold on the column (a price above a level, a count above 0), which trees
  find at once, is one weight away for the network (Gorishniy et al. 2022);
- a **boolean** column is 0/1;
- a **category** column (any other text) becomes one input per value seen at least
  ``min_count`` times (the ``max_categories`` most frequent), plus one *other*
  input shared by the rare values and by any value never seen in training, so
  that prediction never fails on a new value;
- a column with gaps in training also gets a *missing* input (1 where the value was
  missing), so the network can learn what a gap means;
- a column that is missing everywhere, or one that is obviously a row ID (text
  with a different value in every row, or the integers of a range in some order),
  is left out, with a notice; a column of dates is an error saying what to do.

The encoder is plain data (names, kinds, medians, scales, vocabularies): it is
part of the :class:`~deltaprop.model.Model` and saved in its file's checksummed
header as JSON, never pickled.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray

KINDS = ("number", "boolean", "category")
MAX_CATEGORIES = 64  # one-hot inputs per category column, at most (the rest share "other")
MIN_COUNT = 2  # a value seen fewer times in training is rare: it shares "other"
_IQR_TO_STD = 1.349  # the interquartile range of a standard normal column
CLIP = 3.0  # the bound of smooth clipping (RealMLP's): scaled numbers stay within +-3


class TableNotice(UserWarning):
    """A column of the training table that was left out (empty everywhere, or a row ID)."""


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def is_missing(column: Array) -> Array:
    """Where a raw column has a gap: NaN, None, pandas' NA or NaT, empty text, or text that
    pandas reads as missing ('NA', 'nan', 'NULL', ...)."""
    if column.dtype.kind == "f":
        return np.isnan(column)
    if column.dtype.kind in "biu":
        return np.zeros(len(column), dtype=bool)
    if column.dtype.kind == "M":
        return np.isnat(column)
    if column.dtype.kind == "U":
        return np.isin(column, list(GAP_TEXTS))
    return np.fromiter((_missing_value(v) for v in column), dtype=bool, count=len(column))


# text that stands for a gap: what pandas' read_csv takes as missing by default
GAP_TEXTS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                       "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def _missing_value(v) -> bool:
    if v is None:
        return True
    if isinstance(v, str):  # (exactly: as the ONNX export compares text)
        return v in GAP_TEXTS
    try:
        return bool(v != v)  # NaN and NaT are not equal to themselves
    except TypeError:  # pandas.NA: its comparisons are NA, whose truth is an error
        return True


@dataclass
class ColumnEncoding:
    """How one input column becomes network inputs (see the module's description).

    ``kind`` is ``number``, ``boolean``, ``category`` or ``ignored`` (left out: all
    missing, or a row ID); ``center``/``scale``/``fill`` apply to numbers;
    ``vocabulary`` lists a category column's values with an input of their own;
    ``indicator`` adds the *missing* input.
    """

    name: str
    kind: str
    fill: float = 0.0
    center: float = 0.0
    scale: float = 1.0
    vocabulary: list = field(default_factory=list)
    indicator: bool = False
    edges: list = field(default_factory=list)  # a number's quantile bins (piecewise-linear inputs), or none

    @property
    def width(self) -> int:
        """The number of network inputs this column gives."""
        if self.kind == "ignored":
            return 0
        own = len(self.vocabulary) + 1 if self.kind == "category" else 1 + max(len(self.edges) - 1, 0)
        return own + self.indicator

    def describe(self) -> str:
        """The encoding in words, as ``deltaprop info`` shows it."""
        if self.kind == "ignored":
            return "left out"
        gaps = f", gaps filled{' with ' + format(self.fill, '.6g') if self.kind == 'number' else ''} and " \
            "marked by an input of their own" if self.indicator else ""
        if self.kind == "number":
            bins = f", and {len(self.edges) - 1} piecewise-linear inputs over its quantiles" if self.edges else ""
            return f"number, z = (x - {self.center:.6g}) / {self.scale:.6g}, then z / sqrt(1 + (z/3)^2){bins}{gaps}"
        if self.kind == "boolean":
            return f"boolean, 0/1{gaps}"
        shown = ", ".join(map(repr, self.vocabulary[:8])) + (", ..." if len(self.vocabulary) > 8 else "")
        return f"category, one input per value ({shown}) and one for any other{gaps}"

    def input_names(self) -> list[str]:
        """A name per network input, ``column`` or ``column=value``, ``column=<other>``, ``column=<missing>``."""
        if self.kind == "ignored":
            return []
        names = [f"{self.name}={v}" for v in self.vocabulary] + [f"{self.name}=<other>"] \
            if self.kind == "category" else [self.name] + [f"{self.name} in [{lo:.6g}, {hi:.6g}]"
                                                           for lo, hi in zip(self.edges, self.edges[1:])]
        return names + ([f"{self.name}=<missing>"] if self.indicator else [])

    def encode(self, column: Array, out: Array) -> None:
        """Write this column's inputs for the raw ``column`` into ``out`` (n_rows, width)."""
        if self.kind == "category":
            other = len(self.vocabulary)
            slots = _slots(column, self.vocabulary)
            gap = slots < 0
            out[:, :other + 1] = 0.0
            rows = np.flatnonzero(~gap)
            out[rows, slots[rows]] = 1.0  # a gap sets no value input: only the missing one, if any
            if not self.indicator:  # a gap never seen in training: the shared "other" input
                out[gap, other] = 1.0
        else:
            gap = is_missing(column)
            values = _booleans(column, gap, self.name) if self.kind == "boolean" else _numbers(column, gap, self.name)
            values[gap] = self.fill
            out[:, 0] = (values - self.center) / self.scale
            if self.kind == "number":
                smooth_clip(out[:, 0])
            if self.edges:  # piecewise-linear: how far x is through each quantile bin, 0..1
                lo, hi = np.asarray(self.edges[:-1]), np.asarray(self.edges[1:])
                T = len(lo)
                np.clip((values[:, None] - lo) / (hi - lo), 0.0, 1.0, out=out[:, 1:1 + T])
        if self.indicator:
            out[:, -1] = gap


def _slots(column: Array, vocabulary: list) -> Array:
    """Each value's input among a category column's ``vocabulary`` (its length for any other
    value), or -1 for a gap: one pass, each distinct value looked at once."""
    index = {v: i for i, v in enumerate(vocabulary)}
    other, seen = len(vocabulary), {}

    def slot(v) -> int:
        key = (type(v), v)  # (by type too: False == 0 and True == 1.0, but their texts differ)
        try:
            s = seen.get(key)
        except TypeError:  # (an unhashable value: looked at every time)
            s = None
        if s is None:
            s = -1 if _missing_value(v) else index.get(_text(v), other)
            try:
                seen[key] = s
            except TypeError:
                pass
        return s

    return np.fromiter((slot(v) for v in column), dtype=np.intp, count=len(column))


def smooth_clip(z: Array) -> Array:
    """``z / sqrt(1 + (z / CLIP)^2)`` in place: the identity near 0, bounded by +-CLIP, so that
    an outlier (a column whose interquartile range is small next to its tail: counts,
    incomes) cannot push a network input to 100 and its output with it."""
    np.divide(z, np.sqrt(1.0 + (z / CLIP) ** 2), out=z)
    return z


def _text(v) -> str:
    """A category's value as text, numbers in one form whatever their type or spelling
    (75001, 75001.0 and "75001" are "75001"; 7.5 and "7.50" are "7.5"): a file of
    prediction inputs whose column happens to hold only numbers reads them as numbers."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return v if isinstance(v, str) else str(v)
    if not math.isfinite(x):
        return v if isinstance(v, str) else str(v)
    return str(int(x)) if x.is_integer() and abs(x) < 2 ** 53 else repr(x)


_TRUE, _FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}


def _is_boolean(raw: Array, gap: Array) -> bool:
    if raw.dtype.kind == "b":
        return True
    return raw.dtype.kind in "OU" and all(isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v.strip() in
                                                                              _TRUE | _FALSE) for v in raw[~gap])


def _booleans(column: Array, gap: Array, name: str) -> Array:
    """A raw boolean column (True/False values, or their text) as 0/1 float64, gaps as NaN."""
    if column.dtype.kind in "biuf":
        return column.astype(np.float64)
    values = np.full(len(column), np.nan)
    for i in np.flatnonzero(~gap):
        v = column[i]
        v = v.strip() if isinstance(v, str) else v
        if v is True or v is np.True_ or v in _TRUE:
            values[i] = 1.0
        elif v is False or v is np.False_ or v in _FALSE:
            values[i] = 0.0
        else:
            raise ValueError(f"column {name!r}: row {i}: expected True or False, found {column[i]!r}")
    return values


def _numbers(column: Array, gap: Array, name: str) -> Array:
    """A raw column as float64 (gaps as NaN), or a ValueError naming the first value that is not a number."""
    if column.dtype.kind in "biuf":
        values = column.astype(np.float64)
    else:
        values = np.full(len(column), np.nan)
        for i in np.flatnonzero(~gap):
            v = column[i]
            try:
                values[i] = float(v.strip() if isinstance(v, str) else v)
            except (TypeError, ValueError):
                raise ValueError(f"column {name!r}: row {i}: expected a number, found {v!r}") from None
    bad = np.flatnonzero(np.isinf(values))
    if len(bad):
        raise ValueError(f"column {name!r}: row {bad[0]}: {values[bad[0]]} is not a finite number"
                         + (f" ({len(bad)} such rows)" if len(bad) > 1 else ""))
    return values


@dataclass
class TableEncoder:
    """The encodings of a table's columns, in the model's input order (see the module)."""

    columns: list

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def n_outputs(self) -> int:
        """The number of network inputs the table gives."""
        return sum(c.width for c in self.columns)

    def input_names(self) -> list[str]:
        return [n for c in self.columns for n in c.input_names()]

    @classmethod
    def fit(cls, columns: list, names: list[str], max_categories: int = MAX_CATEGORIES,
            min_count: int = MIN_COUNT, bins: int = 0) -> tuple["TableEncoder", list[str]]:
        """Learn each column's encoding from the training table's raw ``columns`` (1-D
        arrays, named ``names``); returns the encoder and the notices to show the user
        (columns left out, and why). ``bins`` > 0 encodes each number column with more
        than two values piecewise-linearly too, over at most that many quantile bins."""
        encodings, notices = [], []
        for raw, name in zip(columns, names):
            enc, notice = _fit_column(np.asarray(raw), name, max_categories, min_count, bins)
            encodings.append(enc)
            if notice:
                notices.append(notice)
        encoder = cls(encodings)
        if encoder.n_outputs == 0:
            raise ValueError("X: every column was left out (" + "; ".join(notices) + ")")
        return encoder, notices

    def transform(self, columns: list) -> Array:
        """The network inputs (float64, n_rows x n_outputs) of a table's raw ``columns``,
        given in the encoder's order."""
        n = len(columns[0]) if columns else 0
        out = np.empty((n, self.n_outputs))
        start = 0
        for enc, raw in zip(self.columns, columns):
            if enc.width:
                enc.encode(np.asarray(raw), out[:, start:start + enc.width])
                start += enc.width
        return out

    # -- the model file ------------------------------------------------------------------
    def to_config(self) -> list:
        return [{"name": c.name, "kind": c.kind, "fill": c.fill, "center": c.center, "scale": c.scale,
                 "vocabulary": list(c.vocabulary), "indicator": c.indicator, "edges": list(c.edges)}
                for c in self.columns]

    @classmethod
    def from_config(cls, config) -> "TableEncoder":
        """The inverse of :meth:`to_config`, every field checked (ValueError otherwise)."""
        keys = {"name", "kind", "fill", "center", "scale", "vocabulary", "indicator", "edges"}
        if not (isinstance(config, list) and config):
            raise ValueError("table: expected a list of column encodings")
        columns = []
        for c in config:
            if isinstance(c, dict) and set(c) == keys - {"edges"}:  # (written before the bins existed)
                c = {**c, "edges": []}
            if not (isinstance(c, dict) and set(c) == keys):
                raise ValueError(f"table: expected the fields {sorted(keys)} for each column")
            numbers = [c[k] for k in ("fill", "center", "scale")]
            vocab, edges = c["vocabulary"], c["edges"]
            if not (isinstance(edges, list) and all(type(x) in (int, float) and math.isfinite(x) for x in edges)
                    and all(a < b for a, b in zip(edges, edges[1:])) and len(edges) != 1
                    and (c["kind"] == "number" or not edges)):
                raise ValueError(f"table: malformed bins of column {str(c.get('name'))[:40]!r}")
            if not (isinstance(c["name"], str) and c["name"] and c["kind"] in (*KINDS, "ignored")
                    and all(type(x) in (int, float) and math.isfinite(x) for x in numbers) and c["scale"] > 0
                    and isinstance(vocab, list) and all(isinstance(v, str) for v in vocab)
                    and len(set(vocab)) == len(vocab) and (c["kind"] == "category" or not vocab)
                    and isinstance(c["indicator"], bool)):
                raise ValueError(f"table: malformed encoding of column {str(c.get('name'))[:40]!r}")
            columns.append(ColumnEncoding(c["name"], c["kind"], float(c["fill"]), float(c["center"]),
                                          float(c["scale"]), list(vocab), c["indicator"], [float(e) for e in edges]))
        if len({c.name for c in columns}) != len(columns):
            raise ValueError("table: a column is named more than once")
        return cls(columns)


def numbers_or_cells(rows: list, features: list[int]) -> Array:
    """The ``features`` cells of a CSV file's data rows (lists of text): float64 when every
    cell is a number, else (text, empty cells, NaN) the cells themselves, as an object
    array: a table of mixed columns, for a :class:`TableEncoder`. Text is kept as written,
    spaces included, as pandas' ``read_csv`` keeps it: a model trained from the file and
    rows read by pandas (or given to the ONNX graph) see the same categories."""
    X = np.empty((len(rows), len(features)))
    try:
        for i, row in enumerate(rows):
            for j, c in enumerate(features):
                X[i, j] = float(row[c])
        if not np.isnan(X).any():
            return X
    except ValueError:
        pass
    return np.array([[row[c] for c in features] for row in rows], dtype=object).reshape(
        len(rows), len(features))


def needs_encoding(columns: list) -> bool:
    """Whether a table's raw columns need a :class:`TableEncoder`: any that is not all
    finite numbers (text, booleans, gaps, dates)."""
    for raw in columns:
        raw = np.asarray(raw)
        if raw.dtype.kind not in "iuf" or (raw.dtype.kind == "f" and np.isnan(raw).any()):
            return True
    return False


def _fit_column(raw: Array, name: str, max_categories: int, min_count: int,
                bins: int = 0) -> tuple[ColumnEncoding, str]:
    gap = is_missing(raw)
    n, present = len(raw), int((~gap).sum())
    indicator = bool(gap.any())
    if present == 0:
        return ColumnEncoding(name, "ignored"), f"column {name!r} is empty in every row: left out"
    if raw.dtype.kind == "M" or (raw.dtype.kind in "OU" and _all_dates(raw[~gap])):
        raise ValueError(f"column {name!r} holds dates, which a network cannot take as they are: turn it into "
                         "numbers first (days since a reference date, or year, month and day-of-week columns), "
                         "or leave it out")
    if _is_boolean(raw, gap):
        return ColumnEncoding(name, "boolean", fill=0.0, indicator=indicator), ""
    values = _as_numbers(raw, gap)
    if values is not None:
        kept = values[~gap]
        if raw.dtype.kind in "iu" and n >= 20 and len(np.unique(kept)) == n and kept.max() - kept.min() == n - 1:
            notice = (f"column {name!r} numbers the rows (the integers {kept.min():.0f}..{kept.max():.0f}, "
                      "each once): left out as an ID")
            return ColumnEncoding(name, "ignored"), notice
        median = float(np.median(kept))
        q1, q3 = np.percentile(kept, [25, 75])
        scale = float(q3 - q1) / _IQR_TO_STD
        if not scale > 0:
            scale = float(kept.std())
        if not (scale > 0 and math.isfinite(scale)):
            scale = 1.0
        edges = []
        if bins > 0:  # quantile bins (ties merged), for columns of more than two values
            edges = np.unique(np.quantile(kept, np.linspace(0.0, 1.0, bins + 1))).tolist()
            edges = edges if len(edges) > 2 else []
        return ColumnEncoding(name, "number", fill=median, center=median, scale=scale, indicator=indicator,
                              edges=edges), ""
    texts = [_text(v) for v in raw[~gap]]
    counts = Counter(texts)
    if n >= 20 and len(counts) == present:
        return ColumnEncoding(name, "ignored"), \
            f"column {name!r} has a different value in every row (an ID?): left out"
    frequent = sorted((c for c in counts.items() if c[1] >= min_count), key=lambda c: (-c[1], c[0]))
    vocabulary = sorted(v for v, _ in frequent[:max_categories])
    return ColumnEncoding(name, "category", vocabulary=vocabulary, indicator=indicator), ""


def _as_numbers(raw: Array, gap: Array) -> Array | None:
    """The column as float64 if every value present is a number (text such as '3.5' too), else None."""
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64)
    try:
        return _numbers(raw, gap, "")
    except ValueError:
        return None


def _all_dates(values: Array) -> bool:
    sample = values[:100]
    return len(sample) > 0 and all(isinstance(v, str) and _DATE.match(v.strip()) for v in sample) or \
        (len(sample) > 0 and all(hasattr(v, "isoformat") and hasattr(v, "year") for v in sample))
