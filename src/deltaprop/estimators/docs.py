"""The estimators' parameters and attributes, documented once for both.

:class:`MLPClassifier` and :class:`MLPRegressor` share 25 of their parameters and most
of their fitted attributes, with scikit-learn's names, defaults and meanings. Each entry
is written here once, in numpydoc's form (name, type, description), and each class's
docstring takes the entries it has, in its signature's order, so that the two can never
say different things about the same parameter and every parameter and attribute has its
own entry (as numpydoc's validation and scikit-learn's docstring tests expect).
"""

from __future__ import annotations

import textwrap

PARAMETERS = {
    "hidden_layer_sizes": ("array-like of int, default=(100,)",
                           "The widths of the hidden layers: ``(100,)`` is one hidden layer of 100 units."),
    "activation": ("str or list of str, default='relu'",
                   "The hidden layers' activation: 'identity', 'logistic', 'tanh', 'relu', or any name of "
                   ":data:`deltaprop.ACTIVATIONS` ('leaky_relu', 'elu', 'softplus', 'gelu', ...). A list "
                   "gives one per hidden layer."),
    "solver": ("str, default='adam'",
               "'lbfgs' (SciPy's L-BFGS-B on the whole training set), 'sgd' (with momentum or Nesterov "
               "momentum, as scikit-learn's), 'adam', or any deltaprop optimizer ('momentum', "
               "'nesterov', 'adagrad', 'rmsprop', 'adamw')."),
    "alpha": ("float, default=1e-4",
              "Strength of the L2 penalty ``alpha / (2 n_batch) ||W||^2`` on the weights (never on the "
              "biases)."),
    "batch_size": ("int or 'auto', default='auto'",
                   "Rows per step of the stochastic solvers; 'auto' is ``min(200, n_samples)``. A size "
                   "larger than the data is clipped to it, with a warning. Unused by 'lbfgs'."),
    "learning_rate": ("{'constant', 'invscaling', 'adaptive'}, default='constant'",
                      "The step size's schedule for every solver but 'adam' and 'adamw': constant; "
                      "``learning_rate_init / t**power_t``; or divided by 5 whenever the loss (or the "
                      "validation score, with ``early_stopping``) has not improved by ``tol`` for "
                      "``n_iter_no_change`` epochs."),
    "learning_rate_init": ("float, default=0.001",
                           "The initial step size of the stochastic solvers."),
    "power_t": ("float, default=0.5",
                "The exponent of the 'invscaling' schedule."),
    "max_iter": ("int, default=200",
                 "The most epochs of the stochastic solvers, or iterations of 'lbfgs'. Training ends "
                 "earlier when ``tol`` is met."),
    "shuffle": ("bool, default=True",
                "Whether the stochastic solvers shuffle the rows every epoch."),
    "random_state": ("int, RandomState instance or None, default=None",
                     "The seed of the initial weights, the shuffling, the early-stopping split and "
                     "dropout. An int or a RandomState gives scikit-learn's own initial weights and "
                     "split; None draws fresh entropy (never NumPy's global state)."),
    "tol": ("float, default=1e-4",
            "The improvement of the loss (or of the validation score, with ``early_stopping``) that "
            "counts as progress: without it for ``n_iter_no_change`` epochs, training stops (or "
            "the 'adaptive' schedule shrinks the step)."),
    "verbose": ("bool, default=False",
                "Whether to print the loss of every epoch."),
    "warm_start": ("bool, default=False",
                   "Whether ``fit`` continues from the previous fit's weights and optimizer state "
                   "(moments, step count) instead of starting afresh."),
    "momentum": ("float, default=0.9",
                 "The momentum of 'sgd', in [0, 1]."),
    "nesterovs_momentum": ("bool, default=True",
                           "Whether 'sgd' uses Nesterov's momentum."),
    "early_stopping": ("bool, default=False",
                       "Whether to hold out ``validation_fraction`` of the rows (stratified for "
                       "classifiers) and stop when their score has not improved by ``tol`` for "
                       "``n_iter_no_change`` epochs, keeping the best epoch's weights. If the loss "
                       "diverges, training ends with a ConvergenceWarning and the best weights, as "
                       "scikit-learn's does."),
    "validation_fraction": ("float, default=0.1",
                            "The share of rows held out by ``early_stopping``, in (0, 1)."),
    "beta_1": ("float, default=0.9",
               "Adam's decay rate of the first moment, in [0, 1)."),
    "beta_2": ("float, default=0.999",
               "Adam's decay rate of the second moment, in [0, 1)."),
    "epsilon": ("float, default=1e-8",
                "Adam's term for numerical stability."),
    "n_iter_no_change": ("int, default=10",
                         "The epochs without an improvement of ``tol`` that end training."),
    "max_fun": ("int, default=15000",
                "The most evaluations of the loss by 'lbfgs'."),
    "dropout": ("float, default=0.0",
                "Inverted-dropout rate on the hidden layers while training with a stochastic solver "
                "(deltaprop's addition; 0 is scikit-learn's behaviour)."),
    "class_weight": ("dict, 'balanced' or None, default=None",
                     "Weights of the classes in the criterion, multiplying ``sample_weight``; "
                     "'balanced' weighs each class by ``n_samples / (n_classes * its count)``."),
    "dtype": ("{None, 'float32', 'float64'}, default=None",
              "The precision of training and of the network. None follows X, as scikit-learn does: "
              "float32 stays float32, anything else is float64. Predictions come in the precision "
              "of the rows they are asked for."),
    "loss": ("{'squared_error', 'poisson'}, default='squared_error'",
             "Half squared error (identity output, the Gaussian likelihood) or half Poisson deviance "
             "(exp output, for counts ``y >= 0``)."),
}

ATTRIBUTES = {
    "classes_": ("ndarray of shape (n_classes,)",
                 "The class labels (for multilabel targets, ``0 .. n_labels - 1``)."),
    "loss_": ("float",
              "The loss at the end of training, penalty included."),
    "best_loss_": ("float or None",
                   "The lowest training loss of the stochastic solvers; None with ``early_stopping``."),
    "loss_curve_": ("list of float",
                    "The training loss of every epoch (stochastic solvers only)."),
    "validation_scores_": ("list of float or None",
                           "With ``early_stopping``: the score of the held-out rows after every "
                           "epoch; else None."),
    "best_validation_score_": ("float or None",
                               "With ``early_stopping``: the best of ``validation_scores_``; else None."),
    "validation_loss_curve_": ("list of float or None",
                               "With ``early_stopping``: the loss of the held-out rows after every "
                               "epoch (deltaprop's addition); else None."),
    "t_": ("int",
           "The training rows seen by the solver, summed over epochs."),
    "coefs_": ("list of ndarray",
               "``coefs_[i]``, of shape (n_units of layer i, n_units of layer i + 1), are the "
               "weights into layer i + 1: views of the weight rows of the network's augmented "
               "matrix ``W[i+1]``, so that writes reach the model."),
    "intercepts_": ("list of ndarray",
                    "``intercepts_[i]`` are the biases of layer i + 1: views of the bias row of "
                    "``W[i+1]``."),
    "n_features_in_": ("int",
                       "The number of features seen at fit."),
    "feature_names_in_": ("ndarray of shape (n_features_in_,)",
                          "The column names seen at fit, when X had string column names."),
    "n_iter_": ("int",
                "The epochs (or 'lbfgs' iterations) run."),
    "n_layers_": ("int",
                  "The number of layers, input and output included."),
    "n_outputs_": ("int",
                   "The number of output units."),
    "out_activation_": ("str",
                        "The output activation: 'logistic' or 'softmax' for classifiers, 'identity' "
                        "or 'exp' for regressors."),
    "model_": ("deltaprop.Model",
               "The fitted predictor, what :meth:`save` writes and ``deltaprop.load`` reads."),
}


def section(title: str, entries: dict, names) -> str:
    """A numpydoc section (``title`` over its underline) of ``entries`` for ``names``, in
    that order, indented for a class docstring."""
    lines = [title, "-" * len(title)]
    for name in names:
        kind, text = entries[name]
        lines.append(f"{name} : {kind}")
        lines += textwrap.wrap(text, 84, initial_indent="    ", subsequent_indent="    ")
    return textwrap.indent("\n".join(lines), "    ")


def document(*attributes: str):
    """A class decorator that fills the class's docstring: its ``%(parameters)s`` line with an
    entry for every parameter of its signature, in order, and its ``%(attributes)s`` line
    with an entry for each of ``attributes``."""
    import inspect

    def fill(cls: type) -> type:
        names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        cls.__doc__ = cls.__doc__.replace("    %(parameters)s", section("Parameters", PARAMETERS, names)) \
            .replace("    %(attributes)s", section("Attributes", ATTRIBUTES, attributes))
        return cls

    return fill
