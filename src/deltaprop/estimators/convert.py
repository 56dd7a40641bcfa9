"""A fitted scikit-learn pipeline as one :class:`~deltaprop.Model`: the whole predictor.

``make_pipeline(StandardScaler(), MLPClassifier())`` is how scikit-learn users scale
their inputs; saving the MLP alone would leave the scaling behind, and a model file
that predicts on raw rows must hold it. :func:`from_sklearn` folds the pipeline's
``StandardScaler`` steps into the model's input standardizer, so that
``deltaprop.load``, ``deltaprop evaluate`` and ``deltaprop predict`` answer on raw rows
as the pipeline does.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ..data.columns import Columns
from ..data.preprocessing import Standardizer
from ..model import Model
from .base import BaseMLP


def from_sklearn(estimator) -> Model:
    """The :class:`~deltaprop.Model` of a fitted :class:`~deltaprop.MLPClassifier` or
    :class:`~deltaprop.MLPRegressor`, or of a fitted ``Pipeline`` of ``StandardScaler``
    steps ending in one.

    Parameters
    ----------
    estimator : MLPClassifier, MLPRegressor or sklearn.pipeline.Pipeline

    Returns
    -------
    Model
        Its input standardizer is the scalers' (composed), its columns the names the
        pipeline was fitted with, its metadata the estimator's class and parameters.

    Raises
    ------
    TypeError
        For another last step, or a step before it that is not a ``StandardScaler``
        (or ``"passthrough"``), naming it.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import deltaprop as dp
    >>> X, y = load_iris(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), dp.MLPClassifier(solver="lbfgs", random_state=0)).fit(X, y)
    >>> bool((dp.from_sklearn(pipe).predict(X) == pipe.predict(X)).all())
    True
    """
    steps = list(getattr(estimator, "steps", [("estimator", estimator)]))
    *before, (name, mlp) = steps
    if not isinstance(mlp, BaseMLP):
        raise TypeError(f"estimator: its last step {name!r} is a {type(mlp).__name__}, not a deltaprop "
                        "MLPClassifier or MLPRegressor")
    model = mlp.to_model()
    mean, scale = np.zeros(model.n_features), np.ones(model.n_features)
    for step_name, step in before:  # x -> (x - m) / s, step after step: one mean and scale in all
        if step is None or step == "passthrough":
            continue
        if not isinstance(step, StandardScaler):
            raise TypeError(f"estimator: step {step_name!r} is a {type(step).__name__}; a deltaprop model holds "
                            "StandardScaler steps and the MLP (export other pipelines with skl2onnx)")
        check_is_fitted(step)
        m = step.mean_ if step.mean_ is not None else 0.0
        s = step.scale_ if step.scale_ is not None else 1.0
        mean, scale = mean + scale * m, scale * s
    if model.preprocessor is not None:
        mean, scale = mean + scale * model.preprocessor.mean, scale * model.preprocessor.scale
    scaled = bool(before) or model.preprocessor is not None
    names = getattr(estimator, "feature_names_in_", None)
    columns = Columns(tuple(str(c) for c in names)) if names is not None else model.columns
    return Model(model.network, preprocessor=Standardizer(mean, scale) if scaled else None, classes=model.classes,
                 target_scaler=model.target_scaler, columns=columns, metadata=model.metadata)
