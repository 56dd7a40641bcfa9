"""What train() owns and what it must leave alone: TrainState, unchanged arguments, callbacks,
and the behaviours (schedule, clipping, dropout scaling, AdamW's bias rows, stratified
validation) each checked by its effect on the weights, not by a record of it."""

import copy

import numpy as np
import pytest
from sklearn.datasets import load_digits

import deltaprop as dp


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


def history_without_time(h):
    d = h.to_dict()
    d.pop("time")
    return repr(d)  # NaN (no validation) compares equal as text


# --- continuing from the returned state ------------------------------------------------
@pytest.mark.parametrize("optimizer,options", [
    (lambda: dp.SGD(learning_rate=0.1), {}),
    (lambda: dp.Adam(learning_rate=1e-3), {}),
    (lambda: dp.Adam(learning_rate=1e-3), {"dropout": 0.3, "l2": 1e-3, "validation": 0.2,
                                           "schedule": dp.ReduceOnPlateau(patience=0)}),
    (lambda: dp.Momentum(learning_rate=0.05), {"clip_norm": 0.5, "early_stopping": 50}),
])
def test_k_then_n_minus_k_epochs_is_n_epochs_bit_for_bit(data, optimizer, options):
    X, y = data
    straight = dp.Network([64, 32, 10], seed=0)
    full = dp.train(straight, X, y, optimizer=optimizer(), epochs=5, batch_size=64, seed=3, **options)
    net = dp.Network([64, 32, 10], seed=0)
    state = dp.train(net, X, y, optimizer=optimizer(), epochs=2, batch_size=64, seed=3, **options)
    kept = copy.deepcopy(state)
    state = dp.train(net, X, y, optimizer=optimizer(), epochs=3, batch_size=64, state=state, **options)
    assert net.theta.tobytes() == straight.theta.tobytes()
    assert history_without_time(state.history) == history_without_time(full.history)
    assert state.epoch == 5 and state.optimizer.t == full.optimizer.t
    # the state passed in was copied, not changed
    assert kept.epoch == 2 and len(kept.history.loss) == 2


def test_a_state_from_another_optimizer_is_refused(data):
    X, y = data
    net = dp.Network([64, 16, 10], seed=0)
    state = dp.train(net, X, y, optimizer="adam", epochs=1, seed=0)
    with pytest.raises(ValueError, match="state of another optimizer"):
        dp.train(net, X, y, optimizer="sgd", epochs=1, state=state)
    with pytest.raises(ValueError, match="do not fit the network"):
        dp.train(dp.Network([64, 8, 10], seed=0), X, y, epochs=1, state=state)


# --- arguments are left alone ----------------------------------------------------------
def test_train_leaves_its_arguments_unchanged_and_repeats_exactly(data):
    X, y = data
    optimizer = dp.Adam(learning_rate=3e-3)
    schedule = dp.ReduceOnPlateau(patience=0, factor=0.5, min_delta=10.0)  # halves after every epoch
    stopper = dp.EarlyStopping(patience=2)
    seen = []

    class Record(dp.Callback):
        def on_epoch_end(self, epoch, history, net):
            seen.append(epoch)

    before = [copy.deepcopy(vars(o)) for o in (optimizer, schedule, stopper)]
    X_before, y_before = X.copy(), y.copy()
    runs = []
    for _ in range(2):
        net = dp.Network([64, 32, 10], seed=0)
        state = dp.train(net, X, y, optimizer=optimizer, schedule=schedule, early_stopping=stopper,
                         callbacks=[Record()], validation=0.25, epochs=30, seed=1)
        runs.append((net.theta.tobytes(), history_without_time(state.history)))
        after = [vars(o) for o in (optimizer, schedule, stopper)]
        for b, a in zip(before, after):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert runs[0] == runs[1]
    assert "0.00075" in runs[0][1]  # the schedule did act (3e-3 / 4 in epoch 3), on the run's own copy
    assert np.array_equal(X, X_before) and np.array_equal(y, y_before)


def test_an_early_stopping_object_reused_for_another_network_starts_clean(data):
    X, y = data
    stopper = dp.EarlyStopping(patience=3)
    dp.train(dp.Network([64, 32, 10], seed=0), X, y, epochs=40, validation=0.25, seed=0,
             callbacks=[stopper], optimizer=dp.Adam(learning_rate=0.02))
    other = dp.Network([64, 8, 10], seed=1)  # other sizes: the first run's weights cannot fit
    state = dp.train(other, X, y, epochs=40, validation=0.25, seed=0, callbacks=[stopper],
                     optimizer=dp.Adam(learning_rate=0.02))
    best = int(np.argmin(state.history.val_loss))
    assert state.history.best_epoch == best + 1
    Xv_loss = min(state.history.val_loss)
    assert other.loss(X, y) < 10 * Xv_loss  # the network holds its own weights
    assert stopper.best == pytest.approx(Xv_loss)


def test_callback_hooks_are_called_as_documented(data):
    X, y = data
    calls = []

    class Spy(dp.Callback):
        def on_train_begin(self, net, state):
            calls.append(("train_begin", type(net).__name__, type(state).__name__))

        def on_epoch_begin(self, epoch, net, state):
            calls.append(("epoch_begin", epoch))

        def on_batch_begin(self, batch, net, state):
            calls.append(("batch_begin", batch))

        def on_batch_end(self, batch, loss, net, state):
            calls.append(("batch_end", batch, isinstance(loss, float)))

        def on_epoch_end(self, epoch, history, net):
            calls.append(("epoch_end", epoch, len(history.loss)))

        def on_train_end(self, net, history):
            calls.append(("train_end", history.epochs))

    dp.train(dp.Network([64, 8, 10], seed=0), X[:100], y[:100], epochs=2, batch_size=50, callbacks=[Spy()])
    batches = [("batch_begin", 0), ("batch_end", 0, True), ("batch_begin", 1), ("batch_end", 1, True)]
    assert calls == [("train_begin", "Network", "TrainState"),
                     ("epoch_begin", 0), *batches, ("epoch_end", 0, 1),
                     ("epoch_begin", 1), *batches, ("epoch_end", 1, 2),
                     ("train_end", 2)]


# --- behaviours, each through its effect on the weights --------------------------------
def full_batch_step(net, X, y, learning_rate):
    """theta - mu grad J, by hand."""
    grads = net.gradients(X, y)
    return net.theta - learning_rate * np.concatenate([g.ravel() for g in grads[1:]])


def test_the_schedule_sets_the_step_actually_taken():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    net = dp.Network([4, 5, 3], activation="tanh", seed=0, dtype="float64")
    ref = net.copy()
    dp.train(net, X, y, optimizer=dp.SGD(learning_rate=0.4), schedule=dp.Exponential(gamma=0.25), epochs=2,
             batch_size=None)
    for mu in (0.4, 0.1):
        ref.theta[:] = full_batch_step(ref, X, y, mu)
    np.testing.assert_allclose(net.theta, ref.theta, rtol=1e-12, atol=1e-14)


def test_clipping_limits_the_step():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 4)) * 5, rng.integers(0, 3, 30)
    net = dp.Network([4, 5, 3], activation="tanh", seed=0, dtype="float64")
    start = net.theta.copy()
    grad = start - full_batch_step(net, X, y, 1.0)
    assert np.linalg.norm(grad) > 0.1  # so that clipping at 0.1 has something to do
    dp.train(net, X, y, optimizer=dp.SGD(learning_rate=0.5), clip_norm=0.1, epochs=1, batch_size=None)
    np.testing.assert_allclose(net.theta, start - 0.5 * 0.1 * grad / np.linalg.norm(grad), rtol=1e-12)


def test_dropout_keeps_the_expected_output():
    """Inverted dropout scales kept units by 1/keep, so the expected output is unchanged:
    with a linear network the output-bias gradient, mean(o - y), is the same on average."""
    net = dp.Network([3, 200, 1], activation="identity", likelihood="gaussian", seed=0, dtype="float64")
    net.W[1][...] = 0.1  # each hidden unit 0.4 on a row of ones ...
    net.W[2][:-1] = 0.1  # ... and o = 200 x 0.4 x 0.1 = 8 without dropout
    X = np.ones((4000, 3))
    batch = (net.check_X(X), net.encode_targets(np.zeros(4000)))
    plain = dp.Objective(net)
    _, grad = plain.value_and_grad(net.theta, batch)
    expected = plain.G[2][-1, 0]
    dropped = dp.Objective(net, dropout=0.5)
    dropped.value_and_grad(net.theta, batch, rng=np.random.default_rng(0))
    assert expected == pytest.approx(8.0)
    assert dropped.G[2][-1, 0] == pytest.approx(expected, rel=0.02)  # without 1/keep: 4


def test_adamw_decays_weight_rows_but_never_bias_rows():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    net = dp.Network([4, 5, 3], activation="tanh", seed=0, dtype="float64")
    for l in (1, 2):
        net.W[l][-1] = 0.5  # bias rows that a decay would visibly shrink
    adam, adamw = net.copy(), net.copy()
    dp.train(adam, X, y, optimizer=dp.Adam(learning_rate=0.01), epochs=1, batch_size=None)
    dp.train(adamw, X, y, optimizer=dp.AdamW(learning_rate=0.01, weight_decay=10.0), epochs=1, batch_size=None)
    for l in (1, 2):
        np.testing.assert_array_equal(adamw.W[l][-1], adam.W[l][-1])
        # decoupled decay: the weight rows are shrunk by (1 - mu lambda) before the Adam step
        np.testing.assert_allclose(adamw.W[l][:-1], adam.W[l][:-1] - 0.01 * 10.0 * net.W[l][:-1], rtol=1e-12)


def test_the_validation_split_is_stratified():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 4))
    y = np.r_[np.zeros(90, int), np.ones(10, int)]  # a rare class: 10%
    counts = set()
    for seed in range(8):
        trainer = dp.Trainer(dp.Network([4, 3, 2], seed=0), X, y, validation=0.2,
                             settings=dp.TrainSettings(seed=seed))
        held_out = trainer.validation.rows
        counts.add((len(held_out), int(y[held_out].sum())))
    assert counts == {(20, 2)}  # always 18 of the common class and 2 of the rare one


def test_the_validation_split_of_multilabel_targets_keeps_each_label_pattern():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 4))
    # patterns (1, 1) x 10 and (1, 0) x 90: the second column is a rare label, and argmax of a row
    # (what single-label stratification uses) is 0 for both patterns
    Y = np.r_[np.ones((10, 2), int), np.c_[np.ones(90, int), np.zeros(90, int)]]
    counts = set()
    for seed in range(8):
        trainer = dp.Trainer(dp.Network([4, 3, 2], likelihood="bernoulli", seed=0), X, Y, validation=0.2,
                             settings=dp.TrainSettings(seed=seed))
        counts.add(int(Y[trainer.validation.rows, 1].sum()))
    assert counts == {2}


def test_a_copied_state_shares_nothing_with_the_original(data):
    X, y = data
    net = dp.Network([64, 8, 10], seed=0)
    state = dp.train(net, X, y, optimizer="adam", early_stopping=dp.EarlyStopping(patience=5), validation=0.2,
                     epochs=2, seed=0)
    twin = state.copy()
    twin.history.loss.append(9.0)
    twin.history.val_loss[0] = 9.0
    twin.theta += 1
    twin.last_good += 1
    twin.optimizer.arrays["m"] += 1
    twin.optimizer.t += 5
    twin.rng["state"]["state"] += 1
    key = next(iter(twin.callbacks))
    twin.callbacks[key][0]["wait"] = 99
    twin.callbacks[key][1]["best_theta"] += 1
    twin.data_shape[0] = -1
    fresh = dp.train(dp.Network([64, 8, 10], seed=0), X, y, optimizer="adam",
                     early_stopping=dp.EarlyStopping(patience=5), validation=0.2, epochs=2, seed=0)
    assert len(state.history.loss) == 2 and state.history.val_loss == fresh.history.val_loss
    for a, b in ((state.theta, fresh.theta), (state.last_good, fresh.last_good),
                 (state.optimizer.arrays["m"], fresh.optimizer.arrays["m"]),
                 (state.callbacks[key][1]["best_theta"], fresh.callbacks[key][1]["best_theta"])):
        np.testing.assert_array_equal(a, b)
    assert state.optimizer.t == fresh.optimizer.t and state.rng == fresh.rng
    assert state.callbacks[key][0] == fresh.callbacks[key][0] and state.data_shape == fresh.data_shape
