"""What several commands share: reading data sets and blocks, the test split, the guard
of every command that writes, notices, and matching a model's input columns.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
import sys
import warnings


EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class CLIError(Exception):
    """A problem to report in one line (exit status 2)."""


# --- train --------------------------------------------------------------------------
DATA_SUFFIXES = (".pkl.gz", ".csv", ".txt", ".npz", ".npy", ".gz", ".h5", ".hdf5", ".zarr", ".parquet")


def default_stem(data: str) -> str:
    """What a run's outputs are named after: the data set (``digits``, ``mnist`` for
    ``path/to/mnist.pkl.gz``), so that runs on different data do not overwrite each other."""
    name = Path(data.rstrip("/\\")).name or "deltaprop"
    for suffix in DATA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "deltaprop"
    return name


def guard_outputs(outputs: dict[str, str], inputs: list[str]) -> None:
    """The one guard of every command that writes (see :func:`deltaprop.io.files.check_outputs`),
    called before any data is read."""
    from ..io.files import check_outputs

    try:
        check_outputs(outputs, inputs)
    except ValueError as e:
        raise CLIError(str(e)) from None


def split_off(held_out, data, name: str, option: str):
    """(training part, test part) of a data set (:meth:`Dataset.split`: its own test set, or
    the rows ``held_out`` draws, stratified for labels) or of blocks (:meth:`HeldOut.split`),
    its errors said as ``option``'s."""
    try:
        if hasattr(data, "X"):  # a data set in memory
            return data.split(held_out, advice="remove those rows, or check the --target column; integers that "
                                               "count or measure are made a regression by --likelihood gaussian "
                                               "or poisson")
        return held_out.split(data, name=name)
    except ValueError as e:
        raise CLIError(f"{option}: {e}") from None


@contextlib.contextmanager
def notes_of(category, quiet: bool):
    """Warnings of ``category`` (what the library decided on its own, such as a column left
    out) said as the reader's notices are, one line on standard error each, when they happen."""
    with warnings.catch_warnings():  # (which restores showwarning on the way out)
        warnings.simplefilter("always", category)
        shown = warnings.showwarning

        def show(message, cat, filename, lineno, file=None, line=None):
            if not issubclass(cat, category):
                shown(message, cat, filename, lineno, file, line)
            elif not quiet:
                print(f"deltaprop: note: {message}", file=sys.stderr)

        warnings.showwarning = show
        yield


def show_notices(ds, quiet: bool) -> None:
    """What the data reader decided on its own (a column left out...), on standard error."""
    if not quiet:
        for notice in ds.notices:
            print(f"deltaprop: note: {notice}", file=sys.stderr)


def existing_file(path: str | None) -> str:
    """``path`` if it names a file or folder (not a built-in data set's name), else ''."""
    return path if path and Path(path).exists() else ""


def check_features(model, X, what: str) -> None:
    if X.ndim != 2 or X.shape[1] != model.n_features:
        raise CLIError(f"{what}: the model expects {model.n_features} features, the data has "
                       f"{X.shape[1] if X.ndim == 2 else X.shape}")


def as_model_input(model, X, names, what: str):
    """The rows to predict: a named table (a dict of columns) when both the data and the
    model know the columns' names, so that the model matches them by name; else the array,
    in order, of the model's width."""
    if names and model.columns is not None:
        return dict(zip(names, X.T))
    check_features(model, X, what)
    return X


def model_target(model) -> str | None:
    """The target column the model was trained on, when it knows it."""
    return model.columns.target[0] if model.columns is not None and len(model.columns.target) == 1 else None
