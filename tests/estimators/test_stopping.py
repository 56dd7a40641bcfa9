"""scikit-learn's stopping rule as a deltaprop callback, checked against scikit-learn's own runs."""

import math

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import load_digits

from deltaprop import History
from deltaprop.estimators.stopping import NoImprovement

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class FakeNet:
    theta = np.zeros(3)


class FakeState:
    class optimizer:
        learning_rate = None


def replay(rule, losses=None, scores=None):
    """Feed a recorded run to the rule; return the epoch (1-based) at which it stopped, or None."""
    h = History()
    n = len(losses if losses is not None else scores)
    rule.on_train_begin(FakeNet, None)
    for epoch in range(n):
        h.loss.append(losses[epoch] if losses is not None else 1.0)
        h.val_metric.append(scores[epoch] if scores is not None else math.nan)
        if rule.on_epoch_end(epoch, h, FakeNet):
            return epoch + 1
    return None


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


def test_training_loss_rule_stops_where_sklearn_stopped(digits):
    X, y = digits
    theirs = sk.MLPClassifier(hidden_layer_sizes=(16,), tol=1e-2, n_iter_no_change=3, max_iter=300,
                              random_state=0).fit(X, y)
    assert theirs.n_iter_ < 300  # it stopped by the rule
    rule = NoImprovement(1e-2, 3, False, "constant", 1e-3, 0.5, len(X))
    assert replay(rule, losses=theirs.loss_curve_) == theirs.n_iter_
    assert rule.best_loss == theirs.best_loss_


def test_validation_score_rule_stops_where_sklearn_stopped(digits):
    X, y = digits
    theirs = sk.MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=4, tol=1e-3,
                              max_iter=300, random_state=0).fit(X, y)
    assert theirs.n_iter_ < 300
    rule = NoImprovement(1e-3, 4, True, "constant", 1e-3, 0.5, len(X))
    assert replay(rule, scores=theirs.validation_scores_) == theirs.n_iter_
    assert rule.best_score == theirs.best_validation_score_


def test_adaptive_divides_the_learning_rate_by_five_then_stops():
    rule = NoImprovement(1e-4, 2, False, "adaptive", 1e-5, 0.5, 10)
    # a flat loss: the first epoch sets the best, then every 3rd epoch without improvement
    # divides mu by 5: 1e-5 -> 2e-6 -> 4e-7, and the next time, mu being below 1e-6, stops
    stopped = replay(rule, losses=[1.0] * 30)
    assert rule.learning_rate == pytest.approx(1e-5 / 25)
    assert stopped == 1 + 3 * 3 and "Learning rate too small" in rule.stop_reason
    state = FakeState()
    rule.on_epoch_begin(0, FakeNet, state)
    assert state.optimizer.learning_rate == rule.learning_rate


def test_invscaling_uses_the_samples_seen():
    rule = NoImprovement(1e-4, 10, False, "invscaling", 0.1, 0.5, 100)
    state = FakeState()
    rule.on_epoch_begin(0, FakeNet, state)
    assert state.optimizer.learning_rate == 0.1
    replay(rule, losses=[3.0, 2.0])
    rule.on_epoch_begin(2, FakeNet, state)
    assert state.optimizer.learning_rate == pytest.approx(0.1 / 201 ** 0.5)


def test_state_round_trip_continues_the_count():
    rule = NoImprovement(1e-2, 3, True, "constant", 1e-3, 0.5, 10)
    replay(rule, scores=[0.5, 0.6, 0.6])
    again = NoImprovement(1e-2, 3, True, "constant", 1e-3, 0.5, 10)
    again.load_state_dict(*rule.state_dict())
    assert (again.count, again.best_score, again.scores, again.t) == (1, 0.6, [0.5, 0.6, 0.6], 30)
    np.testing.assert_array_equal(again.best_theta, rule.best_theta)
