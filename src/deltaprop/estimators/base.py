"""What :class:`MLPClassifier` and :class:`MLPRegressor` share: scikit-learn's
hyperparameters mapped onto deltaprop's pieces.

An estimator is a thin layer. Its fitted state is a :class:`~deltaprop.Model`
(``model_``: the network and, for classifiers, the class labels) and, for the
stochastic solvers, the :class:`~deltaprop.TrainState` of its training run, so
that ``warm_start`` and ``partial_fit`` continue the very same run: weights,
optimizer moments, step count, shuffling RNG and the stopping rule's counts.

- the criterion is :class:`~deltaprop.Objective` with scikit-learn's ``alpha``
  (the L2 penalty ``alpha / (2 n_batch) ||W||^2``, bias rows excluded);
- ``solver='lbfgs'`` is :func:`~deltaprop.optim.lbfgs.minimize_lbfgs` on the whole
  training set; every other solver is a deltaprop optimizer run by
  :class:`~deltaprop.Trainer`, with scikit-learn's stopping rule and learning-rate
  schedules as a callback (:mod:`deltaprop.estimators.stopping`);
- ``coefs_[l]`` and ``intercepts_[l]`` are views of the augmented ``W[l+1]`` of
  eq. (11): its weight rows and its bias row.
"""

from __future__ import annotations

import json
import math
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..core.activations import ACTIVATIONS
from ..core.initializers import init_weights
from ..core.kernels import resolve_kernels
from ..core.network import Network, check_dtype, root_seed
from ..core.objective import Objective
from ..data.blocks import Blocks
from ..data.columns import Columns
from ..data.sources import array_source
from ..model import Model, load
from ..optim.lbfgs import minimize_lbfgs
from ..optim.optimizers import OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, RMSProp
from ..training.errors import DivergenceError, TrainingInterrupted
from ..training.loop import Trainer
from ..training.settings import TrainSettings
from ..validation import check_weights
from .params import InvalidParameterError, check_names, mlp_constraints
from .signature import constructor
from .stopping import NoImprovement

Array = np.ndarray

ACTIVATION_NAMES = sorted(set(ACTIVATIONS) | {"logistic"})
SOLVERS = sorted({"lbfgs"} | set(OPTIMIZERS))
# scikit-learn's learning_rate schedules apply to 'sgd'; deltaprop applies them to every
# first-order solver except the Adam family, which keeps learning_rate_init as scikit-learn's 'adam' does
_ADAM_FAMILY = ("adam", "adamw")

# scikit-learn's MLP hyperparameters, in its order and with its defaults (the first two by
# position too), then deltaprop's own: the one list both estimators' signatures come from
MLP_PARAMETERS = {
    "hidden_layer_sizes": (100,), "activation": "relu", "solver": "adam", "alpha": 0.0001, "batch_size": "auto",
    "learning_rate": "constant", "learning_rate_init": 0.001, "power_t": 0.5, "max_iter": 200, "shuffle": True,
    "random_state": None, "tol": 1e-4, "verbose": False, "warm_start": False, "momentum": 0.9,
    "nesterovs_momentum": True, "early_stopping": False, "validation_fraction": 0.1, "beta_1": 0.9,
    "beta_2": 0.999, "epsilon": 1e-8, "n_iter_no_change": 10, "max_fun": 15000, "dropout": 0.0, "dtype": None,
}

# sparse X (TF-IDF features, one-hot tables) is read by the first layer as it is (core.engine)
_SPARSE = ["csr", "csc"]

_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values "
               "and need to be preprocessed.")


class BaseMLP(BaseEstimator):
    """The shared machinery; use :class:`MLPClassifier` or :class:`MLPRegressor`."""

    _parameter_constraints: dict = mlp_constraints(ACTIVATION_NAMES, SOLVERS)

    __init__ = constructor(MLP_PARAMETERS, positional=2)

    # -- the fitted network, as scikit-learn lays it out ---------------------------------
    @property
    def coefs_(self) -> list[Array]:
        """``coefs_[i]``: the weights from layer i to layer i + 1, shape (D_i, D_{i+1}):
        views of the weight rows of ``W[i+1]`` (writes reach the model)."""
        return [W[:-1] for W in self._network().W[1:]]

    @coefs_.setter
    def coefs_(self, values) -> None:
        self._assign("coefs_", self.coefs_, values)

    @property
    def intercepts_(self) -> list[Array]:
        """``intercepts_[i]``: the biases of layer i + 1, shape (D_{i+1},): views of the
        bias row of ``W[i+1]``."""
        return [W[-1] for W in self._network().W[1:]]

    @intercepts_.setter
    def intercepts_(self, values) -> None:
        self._assign("intercepts_", self.intercepts_, values)

    def _network(self) -> Network:
        if "model_" not in vars(self):
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet: it has no coefs_")
        return self.model_.network

    @staticmethod
    def _assign(name: str, views: list[Array], values) -> None:
        if len(values) != len(views):
            raise ValueError(f"{name}: expected {len(views)} arrays, found {len(values)}")
        for i, (view, value) in enumerate(zip(views, values)):
            value = np.asarray(value)
            if value.shape != view.shape:
                raise ValueError(f"{name}[{i}]: expected shape {view.shape}, found {value.shape}")
            view[...] = value

    # -- checks ---------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        hidden = self.hidden_layer_sizes
        hidden = [int(h) for h in (hidden if np.iterable(hidden) else [hidden])]
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        return hidden

    def _check_params(self) -> None:
        self._validate_params()  # scikit-learn's check of _parameter_constraints
        if not isinstance(self.activation, str):
            check_names(self, "activation", self.activation, ACTIVATION_NAMES)
        if self.solver == "lbfgs" and self.dropout > 0:
            raise InvalidParameterError(
                f"The 'dropout' parameter of {type(self).__name__} must be 0 with solver='lbfgs' (L-BFGS "
                f"minimizes the deterministic criterion). Got {self.dropout!r} instead.")

    def _check_solver(self) -> bool:
        """partial_fit's availability: an AttributeError for 'lbfgs', as in scikit-learn."""
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. lbfgs is not stochastic.")
        return True

    def _validate_X(self, X) -> Array:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=(np.float64, np.float32), accept_sparse=_SPARSE)

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental: bool = False, classes=None):
        self._check_params()
        hidden = self._hidden_sizes()
        first_pass = "model_" not in vars(self) or (not self.warm_start and not incremental)
        if isinstance(X, Blocks):
            y, dtype = self._blocks_targets(X, y, sample_weight, incremental, first_pass)
            n_features = X.n_features
        else:
            X, y = validate_data(self, X, y, reset=first_pass, multi_output=True, dtype=(np.float64, np.float32),
                                 y_numeric=self._y_numeric, accept_sparse=_SPARSE)
            n_features, dtype = X.shape[1], X.dtype
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._check_targets(y, first_pass, incremental)
        # scikit-learn's random stream, for an int or RandomState: its initial weights and
        # early-stopping split (training's own randomness is deltaprop's, from a seed)
        stream = _sklearn_stream(self.random_state)
        if first_pass:
            self._initialize(n_features, dtype, y, hidden, classes, stream)
        elif self.model_.network.sizes[1:-1] != hidden:
            raise ValueError(f"hidden_layer_sizes: the fitted network has hidden layers {self.model_.network.sizes[1:-1]},"
                             f" found {hidden}; set warm_start=False to start anew")
        model = self.model_
        if isinstance(X, Blocks):  # read a buffer at a time, mapped as the Model maps rows
            transform = None if model.preprocessor is None else model.preprocessor.transform_inplace
            self._fit_stochastic(X.with_preprocessing(transform, model.map_targets), None, None, incremental, stream)
        else:
            T = model.encode_targets(y)
            w = self._sample_weight(y, sample_weight, X.shape[0], incremental)
            if model.preprocessor is not None:  # a model from a file may standardize its inputs
                X = model.transform(X)
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, T, w)
            else:
                self._fit_stochastic(X, T, w, incremental, stream)
        if not np.all(np.isfinite(model.network.theta)):
            raise ValueError(_NON_FINITE)
        return self

    def _blocks_targets(self, blocks: Blocks, y, sample_weight, incremental: bool, first_pass: bool):
        """For partial_fit on data in blocks (one epoch per call, a buffer at a time): every
        block's targets (read whole to check them, as fit checks y) and the data's dtype; what
        ``validate_data`` checks of arrays."""
        if not incremental:
            raise TypeError("X: Blocks are for partial_fit (one epoch per call); fit takes arrays")
        if y is not None or sample_weight is not None:
            raise TypeError("y, sample_weight: Blocks carry their own targets and weights; pass X=blocks alone")
        if self.solver == "lbfgs":
            raise ValueError("partial_fit: not with solver='lbfgs'")
        if first_pass:
            self.n_features_in_ = blocks.n_features
        elif blocks.n_features != self.n_features_in_:
            raise ValueError(f"X has {blocks.n_features} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        stored = blocks.read(0)[0].dtype if first_pass and self.dtype is None else None
        return blocks.targets(), (np.float64 if stored == np.float64 else np.float32)

    def _initialize(self, n_features: int, data_dtype, y, hidden: list[int], classes, stream) -> None:
        likelihood, n_outputs, labels = self._output(y, classes)
        dtype = check_dtype(self.dtype) if self.dtype is not None else data_dtype
        # scikit-learn's initialization (biases drawn too): on small data sets it decides the result
        init = "sklearn_logistic" if self.activation == "logistic" else "sklearn"
        net = Network([n_features, *hidden, n_outputs], activation=self.activation, likelihood=likelihood,
                      init=init, seed=root_seed(self.random_state if stream is None else 0), dtype=dtype)
        if stream is not None:  # the very numbers scikit-learn draws, in its order (weights, then biases)
            for W in net.W[1:]:
                init_weights(W, init, stream)
        # the seed of training's shuffling and dropout
        self._seed = int(self.random_state) if isinstance(self.random_state, Integral) else root_seed(
            self.random_state if stream is None else stream)
        names = getattr(self, "feature_names_in_", None)  # (set by validate_data for a DataFrame)
        self.model_ = Model(net, classes=labels, columns=None if names is None else Columns(tuple(names)))
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_, self.n_layers_ = n_outputs, len(hidden) + 2
        self._state, self._state_solver = None, None
        for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_",
                     "validation_loss_curve_", "loss_"):
            vars(self).pop(name, None)

    def _sample_weight(self, y, sample_weight, n: int, incremental: bool):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight)
        if w.ndim == 0:  # a number for every row, as scikit-learn allows
            w = np.full(n, w, dtype=np.float64)
        return check_weights(w, n)

    def _optimizer(self):
        lr, name = self.learning_rate_init, self.solver
        if name == "sgd":
            if self.momentum == 0:
                return SGD(lr)
            return (Nesterov if self.nesterovs_momentum else Momentum)(lr, self.momentum)
        if name in ("momentum", "nesterov"):
            return OPTIMIZERS[name](lr, self.momentum)
        if name in _ADAM_FAMILY:
            return (Adam if name == "adam" else AdamW)(lr, self.beta_1, self.beta_2, self.epsilon)
        if name == "rmsprop":
            return RMSProp(lr, eps=self.epsilon)
        return AdaGrad(lr, eps=self.epsilon)

    def _fit_lbfgs(self, X: Array, T: Array, w) -> None:
        net = self.model_.network
        objective = Objective(net, alpha=self.alpha, kernels=resolve_kernels(work=float(X.shape[0]) * net.n_params))
        source = array_source(X, T, w, X.shape[0], net.dtype)
        ws = objective.workspace(source.batch_size, source.sparse)
        source.fill(ws, np.arange(source.n_samples), 0)  # the whole set, loaded once for every evaluation
        result = minimize_lbfgs(objective, ws, max_iter=self.max_iter, max_fun=self.max_fun, tol=self.tol,
                                verbose=bool(self.verbose))
        self.n_iter_ = min(result.n_iter, self.max_iter)
        self.loss_ = result.loss
        if result.status != 0:
            message = (f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}):\n"
                       f"{result.message}\n")
            if self.n_iter_ == self.max_iter:
                message += f"\nIncrease the number of iterations to improve the convergence (max_iter={self.max_iter})."
            message += ("\nYou might also want to scale the data as shown in:\n"
                        "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(message, ConvergenceWarning, stacklevel=4)

    def _fit_stochastic(self, X: Array, T: Array, w, incremental: bool, stream) -> None:
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        validation = None
        if self.early_stopping:
            rows = np.arange(X.shape[0])
            if stream is None:
                stream = int(np.random.SeedSequence([self._seed, 1]).generate_state(1)[0])
            train, val = train_test_split(rows, test_size=self.validation_fraction, random_state=stream,
                                          stratify=self._stratify(T))
            if len(val) < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            validation = (X[val], T[val], None if w is None else w[val])
            X, T, w = X[train], T[train], None if w is None else w[train]
        n = X.n_samples if isinstance(X, Blocks) else X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n))
        schedule = "constant" if self.solver in _ADAM_FAMILY else self.learning_rate
        rule = NoImprovement(self.tol, self.n_iter_no_change, self.early_stopping, schedule,
                             self.learning_rate_init, self.power_t, n, bool(self.verbose))
        # the run goes on from its state unless the solver changed (a state holds one optimizer's
        # moments), from the network's weights as they are now (set through coefs_, or by lbfgs)
        state = self._state if self._state_solver == self.solver else None
        if state is not None:
            np.copyto(state.theta, self.model_.network.theta)
        settings = TrainSettings(optimizer=self._optimizer(), batch_size=batch_size, alpha=self.alpha,
                                 dropout=self.dropout, shuffle=self.shuffle, seed=None if state else self._seed)
        trainer = Trainer(self.model_.network, X, T, sample_weight=w, validation=validation, settings=settings,
                          callbacks=[rule], state=state)
        before = trainer.state.history.epochs
        diverged = None
        try:
            state = trainer.run(1 if incremental else self.max_iter)
        except TrainingInterrupted as e:
            if e.cause != "interrupted":  # SIGTERM: the process is asked to end, not just this fit
                raise
            state = e.state
            warnings.warn("Training interrupted by user.", stacklevel=4)
        except DivergenceError as e:
            self._state, self._state_solver = e.state, self.solver
            if not self.early_stopping:
                raise ValueError(f"{_NON_FINITE} ({e}; the estimator keeps its last finite weights)") from None
            # as scikit-learn: the run ends with the weights of its best validation score, and a
            # warning (its epochs of NaN scores, which never improve, are not run here)
            state, diverged = e.state, e
            rule.on_train_end(self.model_.network, state.history)
        self._state, self._state_solver = state, self.solver
        h = state.history
        nan = [math.nan] if diverged else []
        self.n_iter_ = h.epochs - before + len(nan)
        self.t_ = rule.t
        self.loss_curve_ = list(h.loss) + nan
        self.loss_ = self.loss_curve_[-1]
        if self.early_stopping:
            self.best_loss_ = None
            self.validation_scores_ = list(rule.scores) + nan
            self.best_validation_score_ = rule.best_score
            self.validation_loss_curve_ = list(h.val_loss) + nan
        else:
            self.best_loss_ = rule.best_loss
            self.validation_scores_ = self.best_validation_score_ = self.validation_loss_curve_ = None
        if diverged is not None:
            warnings.warn(f"Training diverged at epoch {diverged.epoch} (the loss is not finite): it stopped "
                          "there, with the weights of the epoch of the best validation score. Lower "
                          "learning_rate_init.", ConvergenceWarning, stacklevel=4)
        elif not incremental and self.n_iter_ == self.max_iter and not rule.stop_reason:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)

    # -- files -------------------------------------------------------------------------
    def to_model(self) -> Model:
        """Return the fitted predictor as a :class:`~deltaprop.Model`.

        For a pipeline with a scaler before the estimator, see :func:`deltaprop.from_sklearn`.

        Returns
        -------
        model : deltaprop.Model
            The network, standardizers, labels and columns of this estimator, with its class
            and parameters in the metadata.
        """
        check_is_fitted(self)
        model = self.model_
        settings = {k: v for k, v in self.get_params().items() if k != "random_state"}
        metadata = {**model.metadata, "estimator": type(self).__name__, "params": json.loads(json.dumps(
            settings, default=repr))}
        return Model(model.network, preprocessor=model.preprocessor, classes=model.classes,
                     target_scaler=model.target_scaler, columns=model.columns, metadata=metadata)

    def save(self, path) -> None:
        """Write the fitted model as a deltaprop model file (safetensors, never pickle).

        ``deltaprop.load(path)``, ``deltaprop evaluate`` and ``deltaprop predict`` read it,
        and :meth:`load` turns it back into an estimator. A scaler fitted before it in a
        pipeline is not part of it: save ``deltaprop.from_sklearn(pipeline)`` instead.

        Parameters
        ----------
        path : str or path-like
            Where to write it (atomically: a reader never sees half a file).
        """
        self.to_model().save(path)

    @classmethod
    def load(cls, path):
        """Read a fitted estimator from a deltaprop model file.

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save`, ``deltaprop.Model.save`` or ``deltaprop train``.

        Returns
        -------
        estimator : MLPClassifier or MLPRegressor
            The estimator, as :meth:`from_model` makes it.
        """
        return cls.from_model(load(path))

    @classmethod
    def from_model(cls, model: Model):
        """Make a fitted estimator that predicts as a deltaprop Model does.

        Parameters
        ----------
        model : deltaprop.Model
            The predictor (its standardizer and labels included).

        Returns
        -------
        estimator : MLPClassifier or MLPRegressor
            A fitted estimator whose hyperparameters describe the network;
            ``warm_start=True`` trains on from these weights (with a fresh optimizer state).
        """
        net = model.network
        acts = net.activation_names
        est = cls(hidden_layer_sizes=tuple(net.sizes[1:-1]),
                  activation=acts[0] if len(set(acts)) == 1 else acts, dtype=np.dtype(net.dtype).name)
        est._adopt(model)
        est.model_ = model
        est.n_features_in_ = net.sizes[0]
        if model.columns is not None:
            est.feature_names_in_ = np.asarray(model.columns.features, dtype=object)
        est.n_outputs_, est.n_layers_ = net.sizes[-1], net.n_layers + 1
        est.n_iter_, est.t_ = 0, 0
        est._seed, est._state, est._state_solver = root_seed(None), None, None
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _sklearn_stream(random_state) -> np.random.RandomState | None:
    """The RandomState scikit-learn's MLP draws from for an int or a RandomState (the
    RandomState itself, drawn from, as scikit-learn does); None for None (never NumPy's
    global state: deltaprop then draws from fresh entropy) or a Generator."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    return random_state if isinstance(random_state, np.random.RandomState) else None
