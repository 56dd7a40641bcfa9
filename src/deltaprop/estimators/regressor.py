"""``deltaprop.MLPRegressor``: scikit-learn's MLPRegressor on deltaprop's engine."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if

from .params import StrOptions
from .base import MLP_PARAMETERS, BaseMLP
from .docs import document
from .signature import constructor

Array = np.ndarray

_LIKELIHOODS = {"squared_error": "gaussian", "poisson": "poisson"}


@document("loss_", "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_",
          "validation_loss_curve_", "t_", "coefs_", "intercepts_", "n_features_in_", "feature_names_in_",
          "n_iter_", "n_layers_", "n_outputs_", "out_activation_", "model_")
class MLPRegressor(RegressorMixin, BaseMLP):
    """A multi-layer perceptron regressor: a drop-in for scikit-learn's MLPRegressor.

    The network is trained by backpropagation on deltaprop's engine, as
    :class:`sklearn.neural_network.MLPRegressor` is on scikit-learn's.

    The parameters are scikit-learn's, with the same defaults and meanings; where
    deltaprop does more or differently, it says so here and in the README's table of
    differences.

    %(parameters)s

    %(attributes)s

    Examples
    --------
    >>> import numpy as np
    >>> from deltaprop import MLPRegressor
    >>> X = np.linspace(-1, 1, 50).reshape(-1, 1); y = X[:, 0] ** 2
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> round(reg.score(X, y), 2) > 0.9
    True
    """

    _parameter_constraints = {**BaseMLP._parameter_constraints, "loss": [StrOptions(set(_LIKELIHOODS))]}
    _y_numeric = True

    __init__ = constructor({"loss": "squared_error", **MLP_PARAMETERS}, positional=3)

    # -- targets -----------------------------------------------------------------------
    def _check_targets(self, y, first_pass: bool, incremental: bool) -> None:
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")

    def _output(self, y, classes):
        self.out_activation_ = "identity" if self.loss == "squared_error" else "exp"
        return _LIKELIHOODS[self.loss], 1 if y.ndim == 1 else y.shape[1], None

    def _adopt(self, model) -> None:
        name = model.network.likelihood.name
        if name not in _LIKELIHOODS.values():
            raise ValueError(f"model: a {name} network is not an MLPRegressor (gaussian or poisson output)")
        self.loss = "squared_error" if name == "gaussian" else "poisson"
        self.out_activation_ = "identity" if name == "gaussian" else "exp"

    def _stratify(self, T):
        return None

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or Blocks
            The training rows (CSR/CSC matrices are taken as they are), or
            :class:`deltaprop.Blocks` (data larger than memory, read a buffer of blocks at
            a time, carrying their targets).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), or None
            The targets; None with Blocks.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the criterion.

        Returns
        -------
        self : MLPRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    @available_if(BaseMLP._check_solver)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train one epoch over X and y, continuing the run (not with solver='lbfgs').

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or Blocks
            The training rows (CSR/CSC matrices are taken as they are), or
            :class:`deltaprop.Blocks` (data larger than memory, read a buffer of blocks at
            a time, carrying their targets).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), or None
            The targets; None with Blocks.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the criterion.

        Returns
        -------
        self : MLPRegressor
            The estimator, trained one epoch further.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    # -- predicting --------------------------------------------------------------------
    def predict(self, X) -> Array:
        """Predict the targets of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to predict.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values in the targets' units, in the input's precision (float32
            input gives float32, anything else float64).
        """
        X = self._validate_X(X)
        return self.model_.predict(X).astype(X.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
