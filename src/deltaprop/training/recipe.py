"""The tabular recipe: how deltaprop trains on a real table unless told otherwise.

One set of settings, chosen by measurement on the development suite of real tables
(``benchmarks/tabular.py``; the ablation table in ``benchmarks/README.md`` gives each
ingredient's effect on the mean score and the fit time). It is the default of
:class:`~deltaprop.TabularClassifier` and :class:`~deltaprop.TabularRegressor`, of
:func:`~deltaprop.fit` for a table (a DataFrame: numbers or mixed columns), and of
``deltaprop train`` on a CSV or Parquet file of mixed columns:

- inputs (:mod:`deltaprop.data.tables`): robust scaling and smooth clipping of numbers,
  plus their piecewise-linear encoding over ``bins`` quantile bins; one-hot categories;
  gaps filled and marked;
- an ensemble of ``members`` networks, its prediction their mean;
- Adam at ``learning_rate``, batches of ``batch_size`` rows, stopping after
  ``early_stopping`` epochs without a better validation loss (``epochs`` at most), the
  best epoch's weights kept;
- ``cross_fit``: each member holds out a fold of its own (1/members of the rows,
  stratified for classes) to choose its best epoch, so that every row trains all members
  but one (:mod:`deltaprop.training.crossfit`); where that cannot be (one member, a few
  rows, several processes), all members hold out the same ``validation`` share;
- classification: label smoothing (which also gives the loss a floor, so that a table
  learned perfectly stops early).

What was measured and left out (``python benchmarks/tabular.py --ablation``): dropout,
AdamW's weight decay and wider layers (256 x 256) changed the mean score by less than the
noise between folds, for more time.
"""

from __future__ import annotations

__all__ = ["TABLE_RECIPE"]

TABLE_RECIPE: dict = {
    "hidden": (128, 64),
    "members": 4,
    "bins": 8,
    "epochs": 300,
    "batch_size": 128,
    "learning_rate": 2e-3,
    "validation": 0.1,
    "cross_fit": True,
    "early_stopping": 10,
    "label_smoothing": 0.1,
    "dropout": 0.0,
}
"""The recipe's settings by name (``fit``'s names; ``learning_rate`` is Adam's)."""
