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
- an ensemble of ``members`` networks trained together (one product per layer), its
  prediction their mean;
- Adam at ``learning_rate``, batches of ``batch_size`` rows, ``validation`` of the rows
  held out (stratified for classes) to keep the best epoch's weights, stopping after
  ``early_stopping`` epochs without improvement (``epochs`` at most);
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
    "early_stopping": 10,
    "label_smoothing": 0.1,
    "dropout": 0.0,
}
"""The recipe's settings by name (``fit``'s names; ``learning_rate`` is Adam's)."""
