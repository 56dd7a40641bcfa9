import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

import deltaprop as dp
from deltaprop.diagnostics.health import QUANTITIES, diagnose, probe_rows


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    return X[:900], y[:900]


def _findings(net, data, **options):
    X, y = data
    state = dp.train(net, X, y, epochs=options.pop("epochs", 4), seed=0, diagnostics=True, **options)
    return state.history, dp.diagnose(state.history, net)


def test_a_healthy_run_reports_nothing(digits):
    for activation in ("relu", "tanh"):
        history, findings = _findings(dp.Network([64, 48, 32, 10], activation=activation, seed=0), digits,
                                      epochs=100, validation=0.2, early_stopping=5)
        assert history.stopped and findings == [], findings


def test_a_run_the_epoch_budget_cut_short_is_not_converged_and_underfits(digits):
    history, findings = _findings(dp.Network([64, 48, 32, 10], seed=0), digits, epochs=12,
                                  optimizer=dp.SGD(learning_rate=0.003))
    assert [f.split(":")[0] for f in findings] == ["not converged", "underfitting"], findings
    assert "over the last 2 epochs" in findings[0] and f"gets {history.train_metric[-1]:.0%} of its" in findings[1]


def test_a_network_too_small_underfits_once_converged(digits):
    # one hidden unit for ten classes: the loss has settled (under 1% over the last 10 epochs) far too high
    history, findings = _findings(dp.Network([64, 1, 10], seed=0), digits, epochs=200)
    assert len(findings) == 1 and findings[0].startswith("underfitting: the network gets"), findings


def test_gradients_that_vanished_early_are_reported_with_their_epochs(digits):
    # deep sigmoid: layer 1's gradient starts far below the top layer's, then training repairs it
    history, findings = _findings(dp.Network([64, 32, 32, 32, 32, 10], activation="sigmoid", seed=0), digits,
                                  epochs=60)
    assert findings[0].startswith("gradients vanish across depth in epochs 1-2: layer 1's RMS gradient was "
                                  "down to 0.005 of layer 5's, and recovered later"), findings
    assert findings[1].startswith("not converged: the training loss was still falling"), findings


def test_dead_units_are_reported_with_the_epoch_they_died(digits):
    net = dp.Network([64, 48, 32, 10], seed=0)
    net.W[2][-1] = -30.0  # a very negative bias row: layer 2 never fires
    _, findings = _findings(net, digits)
    assert any(f.startswith("layer 2: 100% of units dead since epoch 1") and "leaky_relu" in f for f in findings)
    assert not any(f.startswith("layer 1:") for f in findings)


def test_saturation_is_reported(digits):
    net = dp.Network([64, 48, 48, 48, 10], activation="sigmoid", seed=0)
    net.theta *= 8  # large weights: |z| far beyond where the sigmoid bends
    _, findings = _findings(net, digits)
    assert any("of sigmoid units saturated since epoch 1" in f for f in findings), findings


@pytest.mark.parametrize("optimizer", [dp.SGD(learning_rate=1e-7), dp.Adam(learning_rate=1e-7)])
def test_a_tiny_learning_rate_is_reported(digits, optimizer):
    _, findings = _findings(dp.Network([64, 32, 10], seed=0), digits, optimizer=optimizer)
    assert [f for f in findings if "the learning rate is too small" in f] and len(findings) == 2, findings


def test_what_is_recorded_and_that_it_changes_nothing(digits):
    X, y = digits
    plain = dp.Network([64, 16, 8, 10], activation=["relu", "tanh"], seed=0)
    watched = plain.copy()
    h0 = dp.train(plain, X, y, epochs=3, seed=1, dropout=0.1).history
    h1 = dp.train(watched, X, y, epochs=3, seed=1, dropout=0.1, diagnostics=True).history
    assert np.array_equal(plain.theta, watched.theta) and h0.loss == h1.loss
    assert h0.layers == {} and set(h1.layers) == set(QUANTITIES)
    for q in QUANTITIES:
        assert np.shape(h1.layers[q]) == (3, 3)
    assert math.isnan(h1.layers["dead"][0][1]) and h1.layers["dead"][0][0] >= 0  # tanh has no dead units
    assert math.isnan(h1.layers["saturated"][0][0]) and h1.layers["saturated"][0][1] >= 0
    assert all(math.isnan(e[2]) for e in h1.layers["dead"])  # nor the output layer
    assert all(0 < r < 1 for e in h1.layers["update_ratio"] for r in e)
    # the update ratio is that of the epoch's last step: with one batch per epoch, of the whole epoch
    full = dp.Network([64, 8, 10], seed=0)
    before = full.theta.copy()
    h = dp.train(full, X, y, epochs=1, batch_size=None, seed=0, diagnostics=True).history
    W1 = slice(0, 65 * 8)
    expected = np.linalg.norm(full.theta[W1] - before[W1]) / np.linalg.norm(full.theta[W1])
    assert h.layers["update_ratio"][0][0] == pytest.approx(expected, rel=1e-5)


def test_dead_fraction_counts_units_silent_on_every_probe_row():
    X = np.random.default_rng(0).normal(size=(64, 2))
    y = (X[:, 0] > 0).astype(int)
    net = dp.Network([2, 4, 2], seed=0)
    net.W[1][...] = [[0.0, 0.0, 1.0, -1.0], [0.0, 0.0, 0.5, 0.5], [-0.1, -0.1, 5.0, 5.0]]
    h = dp.train(net, X, y, epochs=1, seed=0, optimizer=dp.SGD(learning_rate=1e-3), diagnostics=True).history
    assert h.layers["dead"][0][0] == 0.5  # units 0 and 1: z = -0.1 on every row


def test_the_update_ratio_is_that_of_the_epochs_last_step(digits):
    X, y = digits

    class LastStep:
        def on_batch_begin(self, batch, net, state):
            if batch == 3:
                self.before = net.theta.copy()

    net, last = dp.Network([64, 8, 10], seed=0), LastStep()
    h = dp.train(net, X, y, epochs=1, batch_size=225, seed=0, diagnostics=True, callbacks=[last]).history
    W1 = slice(0, 65 * 8)  # 900 rows in 4 batches of 225
    expected = np.linalg.norm(net.theta[W1] - last.before[W1]) / np.linalg.norm(net.theta[W1])
    assert h.layers["update_ratio"][0][0] == pytest.approx(expected, rel=1e-5)


def test_resume_continues_the_record(digits, tmp_path):
    X, y = digits
    net = dp.Network([64, 16, 10], seed=0)
    dp.train(net, X, y, epochs=2, seed=0, diagnostics=True, checkpoint=tmp_path / "c.ckpt")
    state = dp.load_checkpoint(tmp_path / "c.ckpt")
    assert np.shape(state.history.layers["grad_norm"]) == (2, 2)
    again = dp.Network([64, 16, 10], seed=0)
    done = dp.train(again, X, y, epochs=3, seed=0, diagnostics=True, resume=tmp_path / "c.ckpt")
    assert np.shape(done.history.layers["grad_norm"]) == (3, 2)
    assert done.history.layers["grad_norm"][:2] == state.history.layers["grad_norm"]
    copied = state.history.copy()
    copied.layers["grad_norm"][0][0] = -1.0  # a copy's record is its own
    assert state.history.layers["grad_norm"][0][0] != -1.0


def test_histories_without_layers_still_load_and_malformed_ones_are_refused():
    d = dp.History(loss=[1.0], val_loss=[1.0], val_metric=[0.5], grad_norm=[1.0], learning_rate=[0.1],
                   time=[0.1]).to_dict()
    old = {k: v for k, v in d.items() if k != "layers"}
    assert dp.History.from_dict(old).layers == {}
    for bad in ({"grad_norm": [[1.0], [2.0]]}, {"grad_norm": "x"}, {"grad_norm": [["a"]]}, [1]):
        with pytest.raises(ValueError, match="layers"):
            dp.History.from_dict({**d, "layers": bad})


def _history(grad_norms, dead=None):
    n = len(grad_norms)
    L = len(grad_norms[0])
    h = dp.History(loss=[1.0] * n, val_loss=[1.0] * n, val_metric=[0.5] * n, grad_norm=[1.0] * n,
                   learning_rate=[0.1] * n, time=[0.1] * n)
    h.layers = {"grad_norm": grad_norms, "weight_norm": [[1.0] * L] * n, "update_ratio": [[1e-3] * L] * n,
                "dead": dead or [[0.0] * (L - 1) + [math.nan]] * n, "saturated": [[math.nan] * L] * n}
    return h


def test_vanishing_and_exploding_gradients_and_since_which_epoch():
    net = dp.Network([4, 4, 4, 2], seed=0)
    vanish = diagnose(_history([[1e-9, 1e-3, 1.0]]), net)
    assert len(vanish) == 1 and vanish[0].startswith("gradients vanish across depth")
    explode = diagnose(_history([[1e6, 1e2, 1.0]]), net)
    assert len(explode) == 1 and explode[0].startswith("gradients explode across depth")
    assert diagnose(_history([[0.5, 0.8, 1.0]]), net) == []
    dead = [[0.1, 0.0, math.nan], [0.9, 0.0, math.nan], [0.2, 0.0, math.nan], [0.6, 0.0, math.nan],
            [0.7, 0.0, math.nan]]
    found = diagnose(_history([[0.5, 0.8, 1.0]] * 5, dead), net)
    assert found[0].startswith("layer 1: 70% of units dead since epoch 4")
    assert diagnose(dp.History(), net) == []


def test_vanishing_gradients_in_a_deep_sigmoid_stack_are_reported(digits):
    net = dp.Network([64] + [64] * 5 + [10], activation="sigmoid", seed=0)
    _, findings = _findings(net, digits, optimizer=dp.Adam(learning_rate=1e-4), epochs=2)
    assert any(f.startswith("gradients vanish across depth: layer 1's RMS gradient is") for f in findings), findings


def test_an_ensembles_training_metric_is_that_of_its_mean_prediction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    model, state = dp.fit(X, y, members=3, epochs=3, seed=0, diagnostics=True)  # (no early stopping)
    probe = probe_rows(len(X))  # (evenly spaced training rows)
    assert state.history.train_metric[-1] == pytest.approx(np.mean(model.predict(X[probe]) == y[probe]))
    _, crossed = dp.fit(X, y, members=3, epochs=3, seed=0, diagnostics=True, validation="cross-fit")
    assert len(crossed.history.train_metric) == 3 and 0.5 < crossed.history.train_metric[-1] <= 1.0
