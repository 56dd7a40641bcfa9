"""From raw data to a trained :class:`~deltaprop.model.Model`, in one call.

:func:`fit` makes every decision a raw data set needs before
:func:`~deltaprop.training.loop.train` can run (which likelihood, how many
outputs, the class labels, input and target standardization), builds the
network, trains it, and returns the Model that carries those decisions, so that
``model.predict(X_raw)`` answers in the data's own terms. The command line is a
thin layer over it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.network import Network
from ..data.blocks import Blocks
from ..data.preprocessing import Standardizer, choose_output
from ..model import Model
from .loop import block_check, train
from .state import TrainState


def fit(X, y=None, *, hidden: Sequence[int] = (128, 64), activation: str | Sequence[str] = "relu",
        likelihood: str | None = None, task: str | None = None, standardize: bool = True,
        init: str | None = None, dtype="float32", seed: int | None = None, validation=None,
        metadata: dict | None = None, **train_options) -> tuple[Model, TrainState]:
    """Train a network on raw rows and targets; return the Model and the final TrainState.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or Blocks
        Raw inputs (numbers); or data in blocks (:class:`~deltaprop.data.blocks.Blocks`,
        which carry their targets: y is then None), standardized from one pass over them
        and read a buffer at a time.
    y : array-like, or None with Blocks
        Class labels of any type (strings, integers...), several 0/1 columns
        (multilabel), or real targets (one or several columns), or counts with
        ``likelihood="poisson"``.
    hidden : sequence of int
        Hidden layer widths.
    activation : str or sequence of str
        Hidden activation(s).
    likelihood : str, optional
        By default: ``bernoulli`` for two classes or multilabel, ``categorical`` for
        more, ``gaussian`` for real targets.
    task : {"classification", "regression"}, optional
        Overrides the guess from y (for example integer targets meant as values).
    standardize : bool
        Standardize inputs with the training mean and standard deviation, and
        Gaussian targets likewise (the likelihood has unit variance); the Model
        applies and undoes both.
    init, dtype, seed
        As for :class:`Network`; ``seed`` also drives training (see :func:`train`).
    validation : float or (X_val, y_val), optional
        As for :func:`train`, with raw validation rows.
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
    blocks = X if isinstance(X, Blocks) else None
    if blocks is not None:  # the decisions from every block's targets, the inputs read once
        if y is not None:
            raise TypeError("y: Blocks carry their own targets; pass X=blocks alone")
        n_features, targets = blocks.n_features, blocks.targets()
    else:
        X = np.asarray(X)
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise ValueError(f"X: expected a 2-D array of numbers (n_samples, n_features), found shape "
                             f"{X.shape}, dtype {X.dtype}")
        n_features, targets = X.shape[1], y
    out = choose_output(targets, likelihood, task)
    net = Network([n_features, *hidden, out.n_outputs], activation=activation, likelihood=out.likelihood,
                  init=init, seed=seed, dtype=dtype)
    preprocessor = None
    if blocks is None:
        net.check_X(X, convert=False)  # raw values must be finite and fit the network's dtype
        preprocessor = Standardizer.fit(X) if standardize else None
    elif standardize:
        preprocessor = Standardizer.from_moments(*blocks.moments(block_check(net)))
    target_scaler = Standardizer.fit(out.y) if standardize and out.likelihood == "gaussian" else None
    model = Model(net, preprocessor=preprocessor, classes=out.classes, target_scaler=target_scaler,
                  metadata=metadata)

    # the same maps the Model applies at prediction, so training and prediction cannot disagree
    def prepared(b: Blocks) -> Blocks:  # (for blocks: as each batch is read)
        return b.with_preprocessing(None if preprocessor is None else preprocessor.transform_inplace,
                                    model.map_targets)

    if isinstance(validation, Blocks):
        validation = prepared(validation)
    elif validation is not None and not isinstance(validation, (float, np.floating)):
        Xv, yv = validation
        validation = (model.transform(Xv), model.encode_targets(yv))
    data = (prepared(blocks),) if blocks is not None else (model.transform(X), model.encode_targets(y))
    state = train(net, *data, validation=validation, seed=seed, **train_options)
    return model, state
