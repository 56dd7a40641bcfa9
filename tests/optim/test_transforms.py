"""The gradient's way to the weights: transforms, the fused or whole step, constraints, and the
settings object a Trainer takes."""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.optim.transforms import ClipNorm, MaxNorm


def batch(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


class Recorder:
    """A transform that changes nothing and notes what it was given."""

    fusable, summed = False, False

    def __init__(self):
        self.calls = []

    def __call__(self, grad, sq_norm):
        self.calls.append((grad.copy(), sq_norm))


def test_clip_norm_rescales_only_above_its_limit():
    clip = ClipNorm(2.0)
    g = np.array([3.0, 4.0])  # norm 5
    clip(g, 25.0)
    np.testing.assert_allclose(g, [1.2, 1.6])
    small = np.array([0.3, 0.4])
    clip(small, 0.25)
    np.testing.assert_array_equal(small, [0.3, 0.4])
    with pytest.raises(ValueError, match="clip_norm"):
        ClipNorm(0.0)


def test_max_norm_caps_each_units_incoming_weights_and_never_the_bias_row():
    net = dp.Network([5, 4, 3], seed=0, dtype="float64")
    net.W[1][:-1] *= 10
    net.W[1][-1] = 50.0
    bias = net.W[1][-1].copy()
    MaxNorm(net, 1.5)()
    norms = np.linalg.norm(net.W[1][:-1], axis=0)
    np.testing.assert_allclose(norms, 1.5)  # every column was above it
    np.testing.assert_array_equal(net.W[1][-1], bias)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_step_is_fused_only_when_every_transform_allows_it_and_both_routes_agree(optimizer):
    X, y = batch()
    opt = dp.TrainSettings(optimizer=optimizer).optimizer
    nets = [dp.Network([5, 6, 3], seed=1, dtype="float64") for _ in range(2)]
    T = nets[0].encode_targets(y, len(X))
    objectives = [dp.Objective(net, l2=0.01) for net in nets]
    states = [opt.init_state(net.theta, net.layer_slices(), "numpy") for net in nets]
    start = nets[0].theta.copy()
    fused = objectives[0].step((X, T), opt, states[0])
    assert math.isnan(fused.sq_norm) and fused.finite and fused.rows == 40  # not measured unless asked
    recorder = Recorder()
    whole = objectives[1].step((X, T), opt, states[1], [recorder])
    # the recorder had the whole gradient of J at the start, and its squared norm
    J, grad = dp.Objective(dp.Network([5, 6, 3], seed=1, dtype="float64"), l2=0.01).value_and_grad(start, (X, T))
    (seen, sq_norm), = recorder.calls
    np.testing.assert_allclose(seen, grad, rtol=1e-12)
    assert sq_norm == pytest.approx(float(grad @ grad), rel=1e-12)
    assert whole.J == pytest.approx(J, rel=1e-12) and fused.J == pytest.approx(J, rel=1e-12)
    np.testing.assert_allclose(nets[0].theta, nets[1].theta, rtol=1e-12, atol=1e-14)
    assert not np.array_equal(nets[0].theta, start)
    asked = objectives[0].step((X, T), opt, states[0], norm=True)
    assert math.isfinite(asked.sq_norm) and asked.sq_norm > 0


def test_a_step_whose_loss_is_not_finite_updates_nothing():
    X, y = batch()
    net = dp.Network([5, 6, 3], seed=1, dtype="float64")
    T = net.encode_targets(y, len(X))
    X[3, 2] = np.inf
    opt = dp.SGD(learning_rate=0.1)
    before = net.theta.copy()
    for transforms in ([], [Recorder()]):
        with np.errstate(invalid="ignore", over="ignore"):
            step = dp.Objective(net).step((X, T), opt, opt.init_state(net.theta), transforms)
        assert not step.finite
        np.testing.assert_array_equal(net.theta, before)


def test_training_with_clipping_that_never_binds_is_training_without_it():
    """The unfused route (a transform that may not fuse) ends where the fused one does."""
    X, y = batch(200, seed=2)
    plain, clipped = (dp.Network([5, 8, 3], seed=0, dtype="float64") for _ in range(2))
    h1 = dp.train(plain, X, y, epochs=3, batch_size=50, seed=0).history
    h2 = dp.train(clipped, X, y, epochs=3, batch_size=50, seed=0, clip_norm=1e6).history
    np.testing.assert_allclose(clipped.theta, plain.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=1e-10)


def test_settings_are_checked_when_made_and_named_in_the_message():
    for kwargs, match in [({"dropout": 1.0}, r"dropout: expected a fraction in \[0, 1\), found 1.0"), ({"batch_size": 0}, "batch_size"),
                          ({"clip_norm": -1}, "clip_norm"), ({"max_norm": 0}, "max_norm"),
                          ({"checkpoint_every": 0}, "checkpoint_every"), ({"early_stopping": 0}, "early_stopping"),
                          ({"kernels": "cuda"}, "kernels: unknown name"), ({"schedule": "linear"}, "schedule")]:
        with pytest.raises(ValueError, match=match):
            dp.TrainSettings(**kwargs)
    s = dp.TrainSettings(optimizer="SGD", schedule="cosine", early_stopping=False)
    assert isinstance(s.optimizer, dp.SGD) and isinstance(s.schedule, dp.Cosine) and s.early_stopping is None
    assert "label_smoothing" not in s.record()  # (checkpoints written before it still resume)
    assert dp.TrainSettings(label_smoothing=0.1).record()["label_smoothing"] == 0.1
    with pytest.raises(TypeError, match="settings: expected TrainSettings"):
        dp.Trainer(dp.Network([5, 3]), *batch(), settings={"batch_size": 8})


def test_one_settings_object_serves_two_runs_unchanged():
    X, y = batch(120)
    settings = dp.TrainSettings(schedule=dp.ReduceOnPlateau(patience=1), early_stopping=2, seed=4, batch_size=16)
    runs = []
    for _ in range(2):
        net = dp.Network([5, 6, 3], seed=0)
        dp.Trainer(net, X, y, validation=0.25, settings=settings).run(6)
        runs.append(net.theta.copy())
    assert runs[0].tobytes() == runs[1].tobytes()
    assert settings.schedule.state_dict() == dp.ReduceOnPlateau(patience=1).state_dict()


def test_every_option_of_train_but_the_data_and_the_run_is_a_setting():
    """What the README says: train's options are TrainSettings' fields, but for the data, the
    epochs, the callbacks, where the run starts and the ranks."""
    import dataclasses
    import inspect

    run = {"net", "X", "y", "sample_weight", "validation", "epochs", "callbacks", "state", "resume", "distributed"}
    options = set(inspect.signature(dp.train).parameters) - run
    assert options == {f.name for f in dataclasses.fields(dp.TrainSettings)}
