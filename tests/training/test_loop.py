import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import deltaprop as dp

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_y = np.array([0, 1, 1, 0])


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def test_xor_by_full_batch_gradient_descent():
    net = dp.Network([2, 2, 1], activation="sigmoid", likelihood="bernoulli", seed=3, dtype="float64")
    h = dp.train(net, XOR_X, XOR_y, optimizer=dp.SGD(learning_rate=2.0), epochs=5000, batch_size=None).history
    assert np.array_equal(net.predict(XOR_X), XOR_y)
    assert h.loss[-1] < 0.01 and h.loss[-1] < h.loss[0]


def test_textbook_sigmoid_squared_error_network_learns_xor():
    net = dp.Network([2, 3, 1], activation="sigmoid", likelihood="sigmoid+squared_error", seed=1, dtype="float64")
    dp.train(net, XOR_X, XOR_y, optimizer=dp.SGD(learning_rate=5.0), epochs=4000, batch_size=None)
    assert np.array_equal(np.round(net.forward(XOR_X)[:, 0]), XOR_y)


def test_full_batch_data_survives_validation_of_the_same_size():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    Xv, yv = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    a = dp.Network([3, 4, 2], activation="tanh", seed=0, dtype="float64")
    b = a.copy()
    dp.train(a, X, y, optimizer="sgd", epochs=3, batch_size=None, validation=(Xv, yv))
    dp.train(b, X, y, optimizer="sgd", epochs=3, batch_size=None)
    np.testing.assert_array_equal(a.theta, b.theta)  # validating did not change what was trained on


def test_grad_tol_stops_full_batch_training():
    net = dp.Network([2, 2, 1], activation="tanh", likelihood="bernoulli", seed=3, dtype="float64")
    h = dp.train(net, XOR_X, XOR_y, optimizer=dp.SGD(learning_rate=1.0), epochs=100_000,
                 batch_size=None, grad_tol=1e-3).history
    assert h.stop_reason.startswith("gradient norm") and h.grad_norm[-1] < 1e-3
    G = net.gradients(XOR_X, XOR_y)
    assert np.sqrt(sum((g**2).sum() for g in G[1:])) == pytest.approx(
        h.grad_norm[-1], rel=0.2)  # recorded before the last step


def test_digits_with_adam(digits):
    Xtr, Xte, ytr, yte = digits
    net = dp.Network([64, 128, 10], seed=0)
    t0 = time.perf_counter()
    h = dp.train(net, Xtr, ytr, optimizer=dp.Adam(learning_rate=1e-3), epochs=40, batch_size=32,
                 validation=0.1, seed=0).history
    assert time.perf_counter() - t0 < 30
    assert (net.predict(Xte) == yte).mean() >= 0.97
    assert h.metric == "accuracy" and h.val_metric[-1] > 0.9
    assert len(h.loss) == len(h.val_loss) == len(h.grad_norm) == len(h.learning_rate) == len(h.time) == 40


def test_regression_beats_a_linear_baseline():
    """A noisy sine: the network's held-out error is far below the best straight line's."""
    rng = np.random.default_rng(0)
    Xs = rng.uniform(-3, 3, size=(400, 1))
    ys = np.sin(Xs[:, 0]) + 0.1 * rng.normal(size=400)
    Xtr, Xte, ytr, yte = Xs[:300], Xs[300:], ys[:300], ys[300:]
    net = dp.Network([1, 32, 1], activation="tanh", likelihood="gaussian", seed=0)
    h = dp.train(net, Xtr, ytr, epochs=300, batch_size=32, seed=0, optimizer=dp.Adam(learning_rate=0.01),
                 validation=0.2).history
    mse_net = np.mean((net.forward(Xte)[:, 0] - yte) ** 2)
    w = np.linalg.lstsq(np.c_[Xtr, np.ones(300)], ytr, rcond=None)[0]
    mse_lin = np.mean((np.c_[Xte, np.ones(100)] @ w - yte) ** 2)
    assert mse_net < 0.2 * mse_lin
    assert h.metric == "r2" and h.val_metric[-1] > 0.9


@pytest.mark.parametrize("optimizer", list(dp.OPTIMIZERS))
def test_every_optimizer_lowers_the_loss(optimizer, digits):
    Xtr, _, ytr, _ = digits
    net = dp.Network([64, 32, 10], seed=0)
    h = dp.train(net, Xtr[:500], ytr[:500], optimizer=optimizer, epochs=5, batch_size=50, seed=0).history
    assert h.loss[-1] < h.loss[0]


def test_divergence_stops_with_a_clear_error_and_finite_weights(digits):
    """Least squares with a step far above 2 / (largest curvature) must blow up geometrically."""
    Xtr, _, ytr, _ = digits
    net = dp.Network([64, 32, 1], activation="identity", likelihood="gaussian", seed=0)
    with pytest.raises(dp.DivergenceError, match="diverged at epoch .* smaller learning rate") as e:
        dp.train(net, Xtr, ytr.astype(float), optimizer=dp.SGD(learning_rate=10.0), epochs=50, batch_size=64,
                 seed=0)
    assert np.all(np.isfinite(net.theta))
    assert e.value.epoch >= 1 and e.value.history.stop_reason == "diverged"


def test_same_seed_bit_identical_and_global_state_untouched(digits):
    Xtr, _, ytr, _ = digits
    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    runs = []
    for _ in range(2):
        net = dp.Network([64, 32, 10], seed=0)
        h = dp.train(net, Xtr, ytr, epochs=3, batch_size=64, dropout=0.2, validation=0.2, seed=7).history
        runs.append((net.theta.tobytes(), h.loss, h.val_loss))
    assert runs[0] == runs[1]
    assert np.array_equal(np.random.get_state()[1], before)


def test_regularizers(digits):
    Xtr, _, ytr, _ = digits
    base = dp.Network([64, 32, 10], seed=0)
    decayed = base.copy()
    dp.train(base, Xtr, ytr, optimizer="sgd", epochs=3, seed=0)
    dp.train(decayed, Xtr, ytr, optimizer="sgd", epochs=3, seed=0, l2=0.5)
    assert np.linalg.norm(decayed.W[1][:-1]) < np.linalg.norm(base.W[1][:-1])
    clipped = dp.Network([64, 32, 10], seed=0)
    dp.train(clipped, Xtr, ytr, epochs=2, seed=0, max_norm=0.5, clip_norm=1.0)
    assert np.linalg.norm(clipped.W[1][:-1], axis=0).max() <= 0.5 + 1e-5
    dropped = dp.Network([64, 32, 10], seed=0)
    h = dp.train(dropped, Xtr, ytr, epochs=5, seed=0, dropout=0.5).history
    assert h.loss[-1] < h.loss[0]


def test_l2_never_touches_bias_rows():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)
    plain = dp.Network([3, 4, 2], activation="tanh", seed=0, dtype="float64")
    plain.W[1][-1], plain.W[2][-1] = 0.7, -0.3
    decayed = plain.copy()
    dp.train(plain, X, y, optimizer=dp.SGD(learning_rate=0.1), epochs=1, batch_size=None)
    dp.train(decayed, X, y, optimizer=dp.SGD(learning_rate=0.1), epochs=1, batch_size=None, l2=0.5)
    for l in (1, 2):
        np.testing.assert_array_equal(decayed.W[l][-1], plain.W[l][-1])  # bias rows: no decay
        # weight rows: one step of eq. (10) on J + l2/2 ||W||^2 shrinks them by mu * l2 * W
        start = dp.Network([3, 4, 2], activation="tanh", seed=0, dtype="float64").W[l][:-1]
        np.testing.assert_allclose(decayed.W[l][:-1], plain.W[l][:-1] - 0.1 * 0.5 * start, atol=1e-12)


def test_early_stopping_restores_the_best_weights(digits):
    Xtr, Xte, ytr, yte = digits
    net = dp.Network([64, 64, 10], seed=0)
    es = dp.EarlyStopping(patience=3)
    h = dp.train(net, Xtr, ytr, epochs=500, validation=(Xte, yte), early_stopping=es, seed=0,
                 optimizer=dp.Adam(learning_rate=0.01)).history
    assert h.stop_reason.startswith("early stopping") and h.epochs < 500
    best = int(np.argmin(h.val_loss))
    assert h.best_epoch == best + 1
    assert h.epochs == h.best_epoch + es.patience  # stopped exactly `patience` epochs after the best
    assert net.loss(Xte, yte) == pytest.approx(h.val_loss[best], rel=1e-5)


def test_a_held_out_fraction_is_taken_per_class_for_one_bernoulli_column():
    from deltaprop.data.splits import split_validation

    T = np.zeros((100, 1))
    T[:10] = 1.0  # 10% positives, in one 0/1 column
    for seed in range(5):
        train, val = split_validation(T, 0.2, np.random.default_rng(seed), stratify=True)
        assert len(val) == 20 and T[val, 0].sum() == 2 and len(np.intersect1d(train, val)) == 0
        assert len(train) + len(val) == 100


def test_callbacks_can_stop_training():
    class StopAt:
        stop_reason = "enough"

        def on_epoch_end(self, epoch, history, net):
            return epoch == 2

    net = dp.Network([2, 2, 1], likelihood="bernoulli", seed=0)
    h = dp.train(net, XOR_X, XOR_y, epochs=50, callbacks=[StopAt()]).history
    assert h.epochs == 3 and h.stop_reason == "enough"


def test_online_and_short_last_batch():
    net = dp.Network([2, 3, 1], likelihood="bernoulli", seed=0)
    h = dp.train(net, XOR_X, XOR_y, epochs=2, batch_size=1, optimizer="sgd", seed=0).history
    assert h.epochs == 2
    net = dp.Network([2, 3, 1], likelihood="bernoulli", seed=0)
    dp.train(net, XOR_X[:3], XOR_y[:3], epochs=1, batch_size=2, optimizer="sgd", seed=0, shuffle=False)
    # by hand: a batch of 2 then one of 1, the short batch used, not dropped
    ref = dp.Network([2, 3, 1], likelihood="bernoulli", seed=0)
    for rows in ([0, 1], [2]):
        ref.theta -= 0.1 * np.concatenate([g.ravel() for g in ref.gradients(XOR_X[rows], XOR_y[rows])[1:]])
    np.testing.assert_allclose(net.theta, ref.theta, rtol=1e-6)


def test_bad_training_arguments():
    net = dp.Network([2, 2, 1], likelihood="bernoulli", seed=0)
    for kwargs, match in [({"epochs": 0}, "epochs: expected an integer >= 1"),
                          ({"batch_size": 0}, "batch_size"),
                          ({"dropout": 1.0}, "dropout"),
                          ({"validation": 1.5}, "validation: expected a fraction"),
                          ({"optimizer": "lbfgs"}, "optimizer: unknown name"),
                          ({"schedule": "linear"}, "schedule: unknown name")]:
        with pytest.raises(ValueError, match=match):
            dp.train(net, XOR_X, XOR_y, **kwargs)


# --- checkpoints and exact resume ----------------------------------------------------
def _run(tmp_path, epochs, **kw):
    X, y = load_digits(return_X_y=True)
    net = dp.Network([64, 32, 10], seed=0)
    h = dp.train(net, X[:600] / 16, y[:600], epochs=epochs, batch_size=64, dropout=0.1, validation=0.2,
                 schedule=dp.ReduceOnPlateau(patience=1), early_stopping=dp.EarlyStopping(patience=50),
                 optimizer="adam", seed=11, **kw).history
    return net, h


def _same(h1, h2):
    d1, d2 = h1.to_dict(), h2.to_dict()
    d1.pop("time"), d2.pop("time")
    return d1 == d2


def test_resume_is_bit_identical(tmp_path):
    full_net, full_h = _run(tmp_path, 8)
    ckpt = str(tmp_path / "run.ckpt")
    _run(tmp_path, 3, checkpoint=ckpt)
    net, h = _run(tmp_path, 8, resume=ckpt)  # until 8 epochs in all
    assert net.theta.tobytes() == full_net.theta.tobytes()
    assert _same(h, full_h)


def test_resume_refuses_another_architecture_or_data(tmp_path):
    ckpt = str(tmp_path / "run.ckpt")
    _run(tmp_path, 1, checkpoint=ckpt)
    X, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match="different network"):
        dp.train(dp.Network([64, 16, 10], seed=0), X[:600], y[:600], batch_size=64, validation=0.2,
                 seed=11, resume=ckpt)
    with pytest.raises(ValueError, match="data of shape"):
        dp.train(dp.Network([64, 32, 10], seed=0), X[:500], y[:500], batch_size=64, validation=0.2,
                 seed=11, resume=ckpt)
    with pytest.raises(dp.ModelFileError, match="does not exist"):
        dp.train(dp.Network([64, 32, 10], seed=0), X[:600], y[:600], resume=str(tmp_path / "nope.ckpt"))


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_loop import _run

    class Slow:
        def on_epoch_end(self, epoch, history, net):
            time.sleep(0.3)

    _run(None, 40, checkpoint={ckpt!r}, callbacks=[Slow()])
""")


def test_resume_after_sigkill(tmp_path):
    ckpt = tmp_path / "killed.ckpt"
    script = KILL_SCRIPT.format(tests=os.path.dirname(__file__), ckpt=str(ckpt))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if ckpt.exists():
                epoch = dp.load_checkpoint(ckpt).epoch
                if epoch >= 3:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done = dp.load_checkpoint(ckpt).epoch
    net, h = _run(tmp_path, 12, resume=str(ckpt))  # the run's total
    full_net, full_h = _run(tmp_path, 12)
    assert net.theta.tobytes() == full_net.theta.tobytes()
    assert _same(h, full_h)


def test_interrupt_mid_epoch_saves_a_resumable_checkpoint(tmp_path):
    ckpt = str(tmp_path / "int.ckpt")

    class InterruptOnce:
        def on_batch_end(self, batch, loss, net, state):
            if state.epoch == 2 and batch == 0:
                os.kill(os.getpid(), signal.SIGINT)  # handled between two batches

    with pytest.raises(dp.TrainingInterrupted):
        _run(tmp_path, 6, checkpoint=ckpt, callbacks=[InterruptOnce()])
    state = dp.load_checkpoint(ckpt)
    assert state.epoch == 2 and state.batch >= 1  # stopped mid-epoch
    net, h = _run(tmp_path, 6, resume=ckpt)  # 6 in all, epoch 3 finished first
    full_net, full_h = _run(tmp_path, 6)
    assert net.theta.tobytes() == full_net.theta.tobytes()
    assert _same(h, full_h)


def test_blas_threads_limited_during_training_and_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    seen = []

    class Probe:
        def on_epoch_end(self, epoch, history, net):
            seen.append(blas_threads())

    net = dp.Network([2, 3, 1], likelihood="bernoulli", seed=0)
    # tiny products (OpenBLAS runs them on one thread itself): the library's setting is left alone
    dp.train(net, XOR_X, XOR_y, epochs=1, batch_size=2, callbacks=[Probe()])
    assert seen[0] == before
    # small ones (16 x 65 x 300 multiply-adds): one thread while training, the setting restored after
    X = np.random.default_rng(0).normal(size=(32, 64))
    dp.train(dp.Network([64, 300, 2], seed=0), X, np.arange(32) % 2, epochs=1, batch_size=16, callbacks=[Probe()])
    assert seen[1] and all(n == 1 for n in seen[1])
    assert blas_threads() == before
    with pytest.raises(ValueError, match="blas_threads"):
        dp.train(net, XOR_X, XOR_y, epochs=1, blas_threads=0)


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3), n=st.integers(1, 30),
       batch=st.one_of(st.none(), st.integers(1, 40)), optimizer=st.sampled_from(list(dp.OPTIMIZERS)),
       activation=st.sampled_from(list(dp.ACTIVATIONS)), seed=st.integers(0, 100))
def test_training_any_architecture_keeps_finite_weights_and_full_history(sizes, n, batch, optimizer,
                                                                        activation, seed):
    rng = np.random.default_rng(seed)
    net = dp.Network([3, *sizes, 2], activation=activation, seed=seed)
    X, y = rng.normal(size=(n, 3)), rng.integers(0, 2, n)
    h = dp.train(net, X, y, optimizer=optimizer, epochs=3, batch_size=batch, seed=seed).history
    assert h.epochs == 3 and np.all(np.isfinite(net.theta))
    assert all(np.isfinite(v) for v in h.loss + h.grad_norm)


@pytest.mark.parametrize("optimizer,kwargs", [("sgd", {}), ("adam", {"dropout": 0.2, "l2": 1e-3}),
                                              ("momentum", {"clip_norm": 1.0, "max_norm": 3.0})])
def test_a_training_batch_allocates_no_arrays(optimizer, kwargs):
    """What the module docstring claims: after the first batch, no buffer of a batch's or a
    layer's size is allocated (NumPy's fixed ufunc buffer and small view objects aside)."""
    import tracemalloc

    class Measure(dp.Callback):
        peak = None

        def on_batch_begin(self, batch, net, state):
            if batch == 1:
                tracemalloc.start()

        def on_batch_end(self, batch, loss, net, state):
            if batch == 3:
                Measure.peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()

    rng = np.random.default_rng(0)
    X, y = rng.random((2048, 100), dtype=np.float32), rng.integers(0, 10, 2048)
    net = dp.Network([100, 256, 128, 10], seed=0)
    dp.train(net, X, y, optimizer=optimizer, epochs=1, batch_size=512, callbacks=[Measure()], seed=0, **kwargs)
    smallest_layer_buffer = 512 * 128 * 4
    assert Measure.peak < smallest_layer_buffer / 2, f"{Measure.peak} bytes allocated in three batches"


def test_train_options_are_keyword_only():
    net = dp.Network([2, 2, 1], likelihood="bernoulli", seed=0)
    with pytest.raises(TypeError):
        dp.train(net, XOR_X, XOR_y, "sgd")
    with pytest.raises(TypeError):
        dp.Trainer(net, XOR_X, XOR_y, "sgd")


def test_a_checkpoint_of_another_format_version_is_refused(tmp_path):
    from deltaprop.io.files import atomic_safetensors, read_safetensors

    ckpt = tmp_path / "run.ckpt"
    _run(tmp_path, 1, checkpoint=str(ckpt))
    tensors, header = read_safetensors(ckpt, "checkpoint")
    atomic_safetensors(ckpt, tensors, {**header, "format_version": "1"})
    with pytest.raises(dp.ModelFileError, match="format version '1'.*start the run again"):
        _run(tmp_path, 1, resume=str(ckpt))


def test_validation_with_weights_is_weighted_and_held_out_rows_keep_theirs(digits):
    X, Xv, y, yv = digits
    wv = np.random.default_rng(0).uniform(0.2, 3.0, size=len(Xv))
    net = dp.Network([64, 16, 10], seed=0, dtype="float64")
    h = dp.train(net, X, y, validation=(Xv, yv, wv), epochs=1, seed=0).history
    assert h.val_loss[-1] == pytest.approx(net.loss(Xv, yv, sample_weight=wv), rel=1e-12)
    right = net.predict(Xv) == yv
    assert h.val_metric[-1] == pytest.approx(np.average(right, weights=wv), rel=1e-12)
    assert h.val_metric[-1] != pytest.approx(np.mean(right), rel=1e-6)
    # a held-out fraction of weighted rows: the validation score is weighted by their own weights
    w = np.where(y < 5, 5.0, 0.1)
    net = dp.Network([64, 16, 10], seed=0, dtype="float64")
    trainer = dp.Trainer(net, X, y, sample_weight=w, validation=0.2, settings=dp.TrainSettings(seed=0))
    held_out = trainer.validation.rows
    assert abs(len(held_out) - 0.2 * len(X)) < 10 and len(np.intersect1d(held_out, trainer.source.rows)) == 0
    h = trainer.run(1).history
    assert h.val_loss[-1] == pytest.approx(net.loss(X[held_out], y[held_out], sample_weight=w[held_out]), rel=1e-12)
    right = net.predict(X[held_out]) == y[held_out]
    assert h.val_metric[-1] == pytest.approx(np.average(right, weights=w[held_out]), rel=1e-12)
    with pytest.raises(TypeError, match="triple"):
        dp.train(net, X, y, validation=(Xv,), epochs=1)
    with pytest.raises(ValueError, match="validation sample_weight: expected finite, non-negative"):
        dp.train(net, X, y, validation=(Xv, yv, -wv), epochs=1)


def test_a_state_continues_under_another_schedule_with_that_schedule_fresh():
    X, y = load_digits(return_X_y=True)
    net = dp.Network([64, 8, 10], seed=0)
    state = dp.train(net, X[:200] / 16, y[:200], epochs=2, schedule=dp.ReduceOnPlateau(patience=0), seed=1)
    state = dp.train(net, X[:200] / 16, y[:200], epochs=2, state=state, schedule=dp.Cosine(min_lr=1e-4))
    assert state.epoch == 4 and state.schedule == {"warmup": 0, "min_lr": 1e-4}


@pytest.mark.parametrize("value", [1.5, float("inf"), 0])
def test_early_stopping_patience_is_validated_under_its_own_name(value):
    with pytest.raises(ValueError, match="early_stopping: expected an integer >= 1"):
        dp.train(dp.Network([2, 2, 1], likelihood="bernoulli"), XOR_X, XOR_y, early_stopping=value)
