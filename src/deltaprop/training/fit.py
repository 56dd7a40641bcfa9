"""From raw data to a trained :class:`~deltaprop.model.Model`, in one call.

:func:`fit` makes every decision a raw data set needs before
:func:`~deltaprop.training.train.train` can run (which likelihood, how many
outputs, the class labels, input and target standardization), builds the
network, trains it, and returns the Model that carries those decisions, so that
``model.predict(X_raw)`` answers in the data's own terms. The command line is a
thin layer over it.
"""

from __future__ import annotations

import difflib
import inspect
import sys
import warnings
from typing import Sequence

import numpy as np

from ..core.network import Network
from ..data.blocks import Blocks
from ..data.columns import Columns, table_names, to_array
from ..data.preprocessing import Standardizer, check_targets, choose_output
from ..data.sources import block_check
from ..data.tables import TableEncoder, TableNotice, needs_encoding
from ..model import Model
from ..optim.optimizers import Adam
from ..validation import check_int
from .crossfit import CROSS_FIT, cross_fits, train_cross_fit
from .recipe import TABLE_RECIPE
from .state import TrainState
from .train import train


def fit(X, y=None, *, hidden: Sequence[int] | None = None, activation: str | Sequence[str] = "relu",
        likelihood: str | None = None, task: str | None = None, standardize: bool | None = None,
        init: str | None = None, dtype="float32", seed: int | None = None, members: int | None = None,
        bins: int | None = None, validation=None,
        columns: Columns | Sequence[str] | None = None, metadata: dict | None = None,
        **train_options) -> tuple[Model, TrainState]:
    """Train a network on raw rows and targets; return the Model and the final TrainState.

    On a table (columns named by strings: a DataFrame, a dict of columns, a pyarrow Table),
    of numbers or of mixed columns (text, booleans or gaps), every setting not given takes
    the tabular recipe's value (:data:`~deltaprop.training.recipe.TABLE_RECIPE`: an
    ensemble, bins, a held-out tenth to keep the best epoch, label smoothing for
    classes); on arrays, the defaults below.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), named table, Dataset or Blocks
        Raw inputs (numbers): an array, or a named table (a pandas DataFrame, a pyarrow
        Table, a dict of columns), whose column names the model records and matches at
        prediction; or a data set as :func:`deltaprop.load_data` reads it (a
        :class:`~deltaprop.data.datasets.Dataset`, which carries its targets, column
        names, task and kind of inputs: y is then None); or data in blocks
        (:class:`~deltaprop.data.blocks.Blocks`, which carry their targets too),
        standardized from one pass over them and read a buffer at a time.
    y : array-like, or None with Blocks
        Class labels of any type (strings, integers...), several 0/1 columns
        (multilabel), or real targets (one or several columns), or counts with
        ``likelihood="poisson"``. Missing (empty, None, NaN) or infinite targets are
        an error naming their rows.
    hidden : sequence of int, default (128, 64)
        Hidden layer widths.
    activation : str or sequence of str
        Hidden activation(s).
    likelihood : str, optional
        By default: ``bernoulli`` for two classes or multilabel, ``categorical`` for
        more, ``gaussian`` for real targets.
    task : {"classification", "regression"}, optional
        Overrides the guess from y (for example integer targets meant as values).
    standardize : bool, optional
        Standardize inputs with the training mean and standard deviation, and
        Gaussian targets likewise (the likelihood has unit variance); the Model
        applies and undoes both. By default yes, but for a Dataset of images (pixel
        intensities already in [0, 1]: :attr:`Dataset.standardize_inputs`).
    init, dtype, seed, members
        As for :class:`Network`; ``seed`` also drives training (see :func:`train`);
        ``members=k`` (default 1) trains an ensemble of k networks together and predicts
        with their mean.
    bins : int, default 0
        For a named table: also encode each number column piecewise-linearly over at
        most this many quantile bins (:class:`~deltaprop.data.tables.TableEncoder`), a
        table of numbers alone included; 0 for none.
    validation : float, (X_val, y_val), (X_val, y_val, sample_weight_val) or "cross-fit", optional
        As for :func:`train`, with raw validation rows; or ``"cross-fit"`` for an ensemble:
        each member holds out a fold of its own (1/members of the rows, stratified),
        where its best epoch is chosen (:mod:`deltaprop.training.crossfit`). The tabular
        recipe cross-fits when it can: with two members or more, at least
        :data:`~deltaprop.training.crossfit.MIN_FOLD` rows a fold, and one process.
    columns : Columns or sequence of str, optional
        The names of X's columns when X is an array (a named table brings its own, and
        a pandas Series as y its name as the target's); the model records them.
    metadata : dict, optional
        Saved with the model.
    **train_options
        Any other argument of :func:`train` (optimizer, epochs, batch_size, ...).

    Returns
    -------
    model : Model
    state : TrainState
        With the history; pass it to :func:`train` as ``state=`` to continue.
    """
    _check_options(train_options)
    datasets = sys.modules.get("deltaprop.data.datasets")  # (a Dataset exists only once it is imported)
    if datasets is not None and isinstance(X, datasets.Dataset):
        X, y, columns, task, standardize = _from_dataset(X, y, columns, task, standardize)
    standardize = True if standardize is None else bool(standardize)
    given = {"hidden": hidden, "members": members, "bins": bins}
    hidden = (128, 64) if hidden is None else hidden
    members, bins = 1 if members is None else members, 0 if bins is None else bins
    smooth = False  # the recipe's label smoothing, once the targets have chosen a class output
    blocks = X if isinstance(X, Blocks) else None
    table = None
    if blocks is not None:  # the decisions from every block's targets, the inputs read once
        if y is not None:
            raise TypeError("y: Blocks carry their own targets; pass X=blocks alone")
        n_features, targets = blocks.n_features, blocks.targets()
        columns = _columns(columns, blocks.feature_names, blocks.target_names)
    else:
        columns = _columns(columns, table_names(X), _target_names(y))
        if table_names(X) is not None:  # (then columns holds its names)
            raw = columns.pick(X)
            # a table (a DataFrame, columns by name), of numbers or not: what is not given comes
            # from the tabular recipe, which won on the development suite's tables of numbers too
            hidden, members, bins, validation = _recipe(given, validation, train_options, len(raw[0]))
            smooth = "label_smoothing" not in train_options
            if needs_encoding(raw) or bins:  # text, booleans or gaps (or bins): each column learns its encoding
                table, notices = TableEncoder.fit(raw, list(columns.features), bins=check_int("bins", bins, 0))
                for notice in notices:
                    warnings.warn(f"X: {notice}", TableNotice, stacklevel=2)
                X = table.transform(raw)
        X = to_array(X)
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise ValueError(f"X: expected a 2-D array of numbers (n_samples, n_features), found shape "
                             f"{X.shape}, dtype {X.dtype}")
        n_features, targets = X.shape[1], to_array(y)
    # before any decision is taken from them
    check_targets(targets, "y" if columns is None or not columns.target else f"y ({', '.join(columns.target)})")
    if columns is not None and table is None and len(columns.features) != n_features:
        raise ValueError(f"columns: {len(columns.features)} names for {n_features} columns of X")
    out = choose_output(targets, likelihood, task)
    if smooth and out.likelihood in ("categorical", "bernoulli"):
        train_options["label_smoothing"] = TABLE_RECIPE["label_smoothing"]
    net = Network([n_features, *hidden, out.n_outputs], activation=activation, likelihood=out.likelihood,
                  init=init, seed=seed, dtype=dtype, members=members)
    preprocessor = None
    if blocks is None and table is None:
        net.check_X(X, convert=False)  # raw values must be finite and fit the network's dtype
        preprocessor = Standardizer.fit(X) if standardize else None
    elif blocks is not None and standardize:
        preprocessor = Standardizer.from_moments(*blocks.moments(block_check(net)))
    target_scaler = Standardizer.fit(out.y) if standardize and out.likelihood == "gaussian" else None
    model = Model(net, preprocessor=preprocessor, classes=out.classes, target_scaler=target_scaler,
                  columns=columns, table=table, metadata=metadata)

    # the same maps the Model applies at prediction, so training and prediction cannot disagree
    def prepared(b: Blocks) -> Blocks:  # (for blocks: as each batch is read)
        return b.with_preprocessing(None if preprocessor is None else preprocessor.transform_inplace,
                                    model.map_targets)

    if isinstance(validation, Blocks):
        validation = prepared(validation)
    elif isinstance(validation, str) and validation != CROSS_FIT:
        raise ValueError(f"validation: expected a fraction, rows or {CROSS_FIT!r}, found {validation!r}")
    elif validation is not None and not isinstance(validation, (float, np.floating, str)):
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TypeError("validation: expected a fraction, a pair (X_val, y_val), a triple "
                            "(X_val, y_val, sample_weight_val) or Blocks")
        yv = to_array(validation[1])
        check_targets(yv, "validation y")
        validation = (model.transform(validation[0]), model.encode_targets(yv), *validation[2:])
    if blocks is not None:
        data = (prepared(blocks),)
    else:  # (a mixed table's X is already its encoding)
        data = (model.transform(X) if table is None else net.check_X(X), model.encode_targets(targets))
    if validation == CROSS_FIT:  # each member its own held-out fold
        state = train_cross_fit(net, *data, seed=seed, **train_options)
    else:
        state = train(net, *data, validation=validation, seed=seed, **train_options)
    return model, state


def _from_dataset(ds, y, columns, task, standardize) -> tuple:
    """What a Dataset says of itself, as fit's arguments: (X, y, columns, task, standardize);
    a table (a CSV or Parquet file, of numbers or mixed) as its named columns."""
    if y is not None:
        raise TypeError("y: a Dataset carries its own targets; pass X=dataset alone")
    if columns is None and ds.feature_names:
        columns = Columns(tuple(ds.feature_names), (ds.target_name,) if ds.target_name else ())
    X = ds.X
    if ds.is_table:  # by name, so that the tabular recipe applies
        X = dict(zip(ds.feature_names, X.T))
    return X, ds.y, columns, task or ds.task, ds.standardize_inputs if standardize is None else standardize


def _recipe(given: dict, validation, options: dict, n_samples: int) -> tuple:
    """The tabular recipe's settings for those not given (``options`` completed in place):
    (hidden, members, bins, validation)."""
    r = TABLE_RECIPE
    hidden, members, bins = (r[k] if given[k] is None else given[k] for k in ("hidden", "members", "bins"))
    for name in ("epochs", "batch_size", "dropout"):
        options.setdefault(name, r[name])
    options.setdefault("optimizer", Adam(r["learning_rate"]))
    if validation is None and "early_stopping" not in options:
        validation, options["early_stopping"] = r["validation"], r["early_stopping"]
        if r["cross_fit"] and cross_fits(members, n_samples, options):
            validation = CROSS_FIT
    return hidden, members, bins, validation


def _check_options(options: dict) -> None:
    """fit's own error for a keyword that :func:`train` does not take (a typo, most likely)."""
    known = [p for p in inspect.signature(train).parameters if p not in ("net", "X", "y", "validation", "seed")]
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise TypeError(f"fit() got an unexpected keyword argument {name!r}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))


def _target_names(y) -> list[str] | None:
    """The target's name: a pandas Series' name, or a table's column names."""
    name = getattr(y, "name", None)
    if isinstance(name, str) and name:
        return [name]
    return table_names(y)


def _columns(columns, features, target) -> Columns | None:
    """The model's Columns: as given (names of an array's columns), else the table's own."""
    if isinstance(columns, Columns):
        return columns
    if columns is not None:
        features = [str(c) for c in columns]
    if features is None:
        return None
    target = [t for t in (target or []) if t not in features]
    return Columns(tuple(features), tuple(target))
