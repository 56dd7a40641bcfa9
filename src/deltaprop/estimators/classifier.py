"""``deltaprop.MLPClassifier``: scikit-learn's MLPClassifier on deltaprop's engine."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels

from ..data.preprocessing import choose_output
from .params import StrOptions
from .base import MLP_PARAMETERS, BaseMLP
from .docs import document
from .signature import constructor

Array = np.ndarray


@document("classes_", "loss_", "best_loss_", "loss_curve_", "validation_scores_",
           "best_validation_score_", "validation_loss_curve_", "t_", "coefs_", "intercepts_",
           "n_features_in_", "feature_names_in_", "n_iter_", "n_layers_", "n_outputs_",
           "out_activation_", "model_")
class MLPClassifier(ClassifierMixin, BaseMLP):
    """A multi-layer perceptron classifier: a drop-in for scikit-learn's MLPClassifier.

    The network is trained by backpropagation on deltaprop's engine, as
    :class:`sklearn.neural_network.MLPClassifier` is on scikit-learn's.

    The parameters are scikit-learn's, with the same defaults and meanings; where
    deltaprop does more or differently, it says so here and in the README's table of
    differences.

    %(parameters)s

    %(attributes)s

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from deltaprop import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).tolist()
    [0, 0, 0]
    """

    _parameter_constraints = {**BaseMLP._parameter_constraints, "class_weight": [dict, StrOptions({"balanced"}), None]}
    _y_numeric = False

    __init__ = constructor({**MLP_PARAMETERS, "class_weight": None}, positional=2)

    # -- targets -----------------------------------------------------------------------
    def _check_targets(self, y, first_pass: bool, incremental: bool) -> None:
        kind = type_of_target(y, input_name="y")
        if kind == "multiclass-multioutput":
            raise ValueError("Multioutput target data is not supported with label binarization")
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            check_classification_targets(y)  # scikit-learn's error for this kind of target
        if y.ndim == 2:
            return
        if first_pass:
            unique_labels(y)  # refuses a mix of label types, as scikit-learn does
            return
        labels = np.unique(y)
        if self.warm_start and not incremental and set(labels) != set(self.classes_):
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                             f"call to fit. Previously got {self.classes_}, `y` has {labels}")
        if len(np.setdiff1d(labels, self.classes_)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                             f"'y' has {labels}.")

    def _output(self, y, classes):
        """The likelihood, output width and labels of a first fit: one sigmoid output for
        two classes, a softmax for more, one sigmoid per label for multilabel targets."""
        labels = np.unique(y if classes is None or y.ndim == 2 else np.asarray(classes))
        if y.ndim == 1 and len(labels) == 1:  # one class, as scikit-learn fits it: one sigmoid output, always 0
            self.classes_, self.out_activation_ = labels, "logistic"
            return "bernoulli", 1, labels
        out = choose_output(y if classes is None or y.ndim == 2 else np.asarray(classes), task="classification")
        self.classes_ = np.arange(out.n_outputs) if out.classes is None else out.classes
        self.out_activation_ = "softmax" if out.likelihood == "categorical" else "logistic"
        return out.likelihood, out.n_outputs, out.classes

    def _adopt(self, model) -> None:
        net = model.network
        if net.task != "classification":
            raise ValueError(f"model: a {net.likelihood.name} network is not a classifier; use MLPRegressor")
        self.classes_ = np.arange(net.sizes[-1]) if model.classes is None else model.classes
        self.out_activation_ = "softmax" if net.likelihood.name == "categorical" else "logistic"

    def _stratify(self, T):
        # as scikit-learn: a single 0/1 output (two classes, or one) is stratified, on its
        # values as booleans; several outputs (more classes, several labels) are not
        return T.astype(bool) if T.shape[1] == 1 else None

    def _sample_weight(self, y, sample_weight, n, incremental):
        w = super()._sample_weight(y, sample_weight, n, incremental)
        if self.class_weight is None:
            return w
        if incremental and self.class_weight == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for partial_fit: the class frequencies of "
                             "one batch are not those of the data; pass a dict of weights")
        cw = compute_sample_weight(self.class_weight, y)
        return cw if w is None else w * cw

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or Blocks
            The training rows (CSR/CSC matrices are taken as they are), or
            :class:`deltaprop.Blocks` (data larger than memory, read a buffer of blocks at
            a time, carrying their targets).
        y : array-like of shape (n_samples,) or (n_samples, n_labels), or None
            The labels, or a 0/1 indicator matrix for multilabel targets; None with Blocks.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the criterion (times ``class_weight``).

        Returns
        -------
        self : MLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    @available_if(BaseMLP._check_solver)
    def partial_fit(self, X, y=None, sample_weight=None, classes=None):
        """Train one epoch over X and y, continuing the run (not with solver='lbfgs').

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or Blocks
            The training rows (CSR/CSC matrices are taken as they are), or
            :class:`deltaprop.Blocks` (data larger than memory, read a buffer of blocks at
            a time, carrying their targets).
        y : array-like of shape (n_samples,) or (n_samples, n_labels), or None
            The labels, or a 0/1 indicator matrix for multilabel targets; None with Blocks.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the criterion (times ``class_weight``).
        classes : array-like of shape (n_classes,), default=None
            Every label that may ever appear; required on the first call.

        Returns
        -------
        self : MLPClassifier
            The estimator, trained one epoch further.
        """
        self._check_params()  # before anything else, as scikit-learn does
        first = "model_" not in vars(self)
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if not first and classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # -- predicting --------------------------------------------------------------------
    def predict(self, X) -> Array:
        """Predict the labels of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to label.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            The labels, of the type of ``classes_``; a 0/1 indicator matrix for multilabel
            models.
        """
        X = self._validate_X(X)
        return self.model_.predict(X)

    def predict_proba(self, X) -> Array:
        """Predict the class probabilities of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to score.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            One column per class in the order of ``classes_`` (two for a binary model; one
            per label for multilabel models), in the input's precision (float32 input gives
            float32, anything else float64).
        """
        X = self._validate_X(X)
        return self.model_.predict_proba(X).astype(X.dtype, copy=False)

    def predict_log_proba(self, X) -> Array:
        """Predict the logarithms of the class probabilities of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to score.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            The logarithm of :meth:`predict_proba`.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

