"""A Parquet file of mixed columns, read whole into memory.

A Parquet file of numbers is read by blocks (:mod:`deltaprop.data.blocks`), never
whole. One whose feature columns hold text, booleans or gaps is a table whose model
learns each column's encoding (:mod:`deltaprop.data.tables`) from all of its rows:
such a file is read whole, its columns kept as they are (numbers as numbers, text as
text, gaps as None or NaN), as a :class:`~deltaprop.data.datasets.Dataset` whose ``X``
is an object array, like a CSV file of mixed columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import DataError, Dataset
from .preprocessing import check_targets, infer_task

Array = np.ndarray


def mixed_columns(path: Path, target: str | None) -> list[str]:
    """The feature columns of a Parquet file that are not numbers without gaps (from its
    schema and statistics: nothing is read); empty for a file that blocks can read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    schema = meta.schema.to_arrow_schema()
    names = [n for n in schema.names if n != (target or schema.names[-1]) and not n.startswith("__index")]
    mixed = []
    for name in names:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            mixed.append(name)
            continue
        j = schema.get_field_index(name)
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(j).statistics
            if stats is None or stats.null_count is None or stats.null_count > 0:
                mixed.append(name)
                break
    return mixed


def read_parquet(path: Path, target: str | None, leave_out=()) -> Dataset:
    """A Parquet file read whole: its feature columns as an object array (each value as
    the file has it), and the ``target`` column (default: the last; ``""``: none, for
    prediction inputs) as an array. The columns named in ``leave_out`` are not read."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    names = [n for n in table.column_names if not n.startswith("__index") and n not in leave_out]
    if target == "":
        t = None
    elif target is None:
        t = names[-1]
    elif target in names:
        t = target
    else:
        raise DataError(f"{path}: no column named {target!r}; the columns are {', '.join(names)}")
    features = [n for n in names if n != t]
    if not features or table.num_rows == 0:
        raise DataError(f"{path}: expected feature columns and at least one row")
    X = np.empty((table.num_rows, len(features)), dtype=object)
    for j, name in enumerate(features):
        X[:, j] = table.column(name).to_numpy(zero_copy_only=False)
    y = None
    if t is not None:
        y = table.column(t).to_numpy(zero_copy_only=False)
        if y.dtype == object and all(isinstance(v, str) for v in y):
            y = y.astype(str)
        try:
            check_targets(y, f"{path}: column {t!r} (the target)")
        except ValueError as e:
            raise DataError(str(e)) from None
    task = infer_task(y) if y is not None else None
    classes = np.unique(y).tolist() if task == "classification" and y.ndim == 1 else None
    return Dataset(path.name, X, y, task, classes=classes, feature_names=features, target_name=t)
