"""scikit-learn's stopping rule and learning-rate schedules for its stochastic solvers,
as one :class:`~deltaprop.Callback`.

After every epoch scikit-learn's MLP compares the training loss (or, with
``early_stopping``, the validation score) with the best so far: an epoch that does
not beat it by ``tol`` counts as one without improvement, and more than
``n_iter_no_change`` of them in a row stop training, or, with
``learning_rate='adaptive'``, divide the learning rate by 5 (stopping only once it
is below 1e-6). ``learning_rate='invscaling'`` sets mu = mu_0 / (t + 1)^power_t
with t the number of samples seen. Everything the rule counts is in its
``state_dict``, kept in the :class:`~deltaprop.TrainState`, so that ``warm_start``
and ``partial_fit`` continue the count where it was.
"""

from __future__ import annotations

import math

import numpy as np

from ..training.callbacks import Callback


class NoImprovement(Callback):
    """The rule of scikit-learn's ``_fit_stochastic``, driven by deltaprop's training loop.

    Parameters
    ----------
    tol : float
    n_iter_no_change : int or inf
    early_stopping : bool
        Watch the validation score (``History.val_metric``) instead of the training
        loss, and end with the weights of the best-scoring epoch.
    schedule : {"constant", "invscaling", "adaptive"}
    learning_rate_init, power_t : float
    n_samples : int
        Training rows per epoch (t grows by it after each epoch).
    verbose : bool
        Print scikit-learn's progress lines.
    """

    MIN_LEARNING_RATE = 1e-6  # 'adaptive' stops instead of shrinking below it

    def __init__(self, tol: float, n_iter_no_change, early_stopping: bool, schedule: str,
                 learning_rate_init: float, power_t: float, n_samples: int, verbose: bool = False):
        self.tol, self.n_iter_no_change, self.early_stopping = tol, n_iter_no_change, early_stopping
        self.schedule, self.learning_rate_init, self.power_t = schedule, learning_rate_init, power_t
        self.n_samples, self.verbose = n_samples, verbose
        self.count, self.t, self.learning_rate = 0, 0, learning_rate_init
        self.best_loss = math.inf
        self.best_score = -math.inf
        self.scores: list[float] = []
        self.best_theta: np.ndarray | None = None
        self.stop_reason = ""

    def on_train_begin(self, net, state):
        self.epochs_this_call = 0
        self.stop_reason = ""

    def on_epoch_begin(self, epoch, net, state):
        if self.schedule == "invscaling":
            state.optimizer.learning_rate = self.learning_rate_init / (self.t + 1) ** self.power_t
        elif self.schedule == "adaptive":
            state.optimizer.learning_rate = self.learning_rate

    def on_epoch_end(self, epoch, history, net):
        self.epochs_this_call += 1
        self.t += self.n_samples
        if self.verbose:
            print(f"Iteration {self.epochs_this_call}, loss = {history.loss[-1]:.8f}")
        if self.early_stopping:
            score = history.val_metric[-1]
            self.scores.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            self.count = self.count + 1 if score < self.best_score + self.tol else 0
            if score > self.best_score:
                self.best_score = score
                if self.best_theta is None:
                    self.best_theta = np.empty_like(net.theta)
                np.copyto(self.best_theta, net.theta)
        else:
            loss = history.loss[-1]
            self.count = self.count + 1 if loss > self.best_loss - self.tol else 0
            self.best_loss = min(self.best_loss, loss)
        if self.count <= self.n_iter_no_change:
            return False
        what = "Validation score" if self.early_stopping else "Training loss"
        message = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
        if self.schedule == "adaptive" and self.learning_rate > self.MIN_LEARNING_RATE:
            self.learning_rate /= 5
            self.count = 0
            if self.verbose:
                print(f"{message} Setting learning rate to {self.learning_rate:f}")
            return False
        tail = " Learning rate too small." if self.schedule == "adaptive" else ""
        self.stop_reason = f"{message}{tail} Stopping."
        if self.verbose:
            print(self.stop_reason)
        return True

    def on_train_end(self, net, history):
        if self.early_stopping and self.best_theta is not None:
            np.copyto(net.theta, self.best_theta)

    def state_dict(self):
        scalars = {"count": self.count, "t": self.t, "learning_rate": self.learning_rate,
                   "best_loss": self.best_loss, "best_score": self.best_score, "scores": list(self.scores)}
        return scalars, ({} if self.best_theta is None else {"best_theta": self.best_theta})

    def load_state_dict(self, scalars, arrays):
        self.count, self.t, self.learning_rate = scalars["count"], scalars["t"], scalars["learning_rate"]
        self.best_loss, self.best_score = scalars["best_loss"], scalars["best_score"]
        self.scores = list(scalars["scores"])
        self.best_theta = arrays["best_theta"].copy() if "best_theta" in arrays else None
