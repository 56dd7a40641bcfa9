"""Checkpoints: validated field by field, protected by a checksum, tied to their run."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

import deltaprop as dp
from deltaprop.io.files import atomic_safetensors, read_safetensors

X_ALL, Y_ALL = load_digits(return_X_y=True)
X, Y = X_ALL[:300] / 16, Y_ALL[:300]


def _train(epochs, X=X, y=Y, **kw):
    net = dp.Network([64, 16, 10], seed=0)
    options = dict(epochs=epochs, batch_size=64, validation=0.2, optimizer="adam", seed=3)
    options.update(kw)
    state = dp.train(net, X, y, **options)
    return net, state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "run.ckpt"

    class StopMidEpoch:  # a checkpoint that stopped mid-epoch holds a row order too
        def on_batch_end(self, batch, loss, net, state):
            if state.epoch == 1 and batch == 1:
                raise KeyboardInterrupt

    trainer = dp.Trainer(dp.Network([64, 16, 10], seed=0), X, Y, validation=0.2,
                         settings=dp.TrainSettings(batch_size=64, seed=3, early_stopping=5))
    trainer.run(1)
    trainer.callbacks.append(StopMidEpoch())
    with pytest.raises(KeyboardInterrupt):
        trainer.run(1)
    trainer.state.batch = 2
    trainer.save(str(path))
    return path


def _forge(path, out, change_state=None, change_tensors=None):
    """Rewrite a checkpoint with changed fields and a *recomputed* checksum (a deliberate
    forgery, or a bug): what is behind the checksum must still be validated."""
    tensors, header = read_safetensors(path, "checkpoint")
    state = json.loads(header["state"])
    if change_state:
        change_state(state)
    if change_tensors:
        change_tensors(tensors)
    header = {k: v for k, v in header.items() if k != "checksum"}
    atomic_safetensors(out, tensors, {**header, "state": json.dumps(state)})
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bit=st.integers(min_value=0))
def test_a_flipped_bit_is_an_error_or_changes_nothing(tmp_path, checkpoint, bit):
    data = bytearray(checkpoint.read_bytes())
    bit %= 8 * len(data)
    data[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "flipped.ckpt"
    path.write_bytes(bytes(data))
    try:
        state = dp.load_checkpoint(path)
    except dp.ModelFileError:
        return
    reference = dp.load_checkpoint(checkpoint)
    assert state.theta.tobytes() == reference.theta.tobytes() and state.order.tobytes() == reference.order.tobytes()
    assert (state.epoch, state.batch, state.rng, state.seed) == (reference.epoch, reference.batch, reference.rng,
                                                                 reference.seed)


@pytest.mark.parametrize("name, change_state, change_tensors, message", [
    ("nan theta", None, lambda t: t["theta"].__setitem__(0, np.nan), "'theta' contains NaN"),
    ("nan moment", None, lambda t: t["optimizer.m"].__setitem__(0, np.inf), "'optimizer.m' contains NaN"),
    ("order", None, lambda t: t["order"].__setitem__(0, 10**6), "not a permutation"),
    ("order repeated", None, lambda t: t["order"].__setitem__(0, t["order"][1]), "not a permutation"),
    ("moment shape", None, lambda t: t.__setitem__("optimizer.m", t["optimizer.m"][:5]), "'optimizer.m' has shape"),
    ("extra tensor", None, lambda t: t.__setitem__("payload", np.zeros(3)), "unknown tensors"),
    ("learning rate", lambda s: s["optimizer"].__setitem__("learning_rate", -1.0), None, "'learning_rate'"),
    ("step count", lambda s: s["optimizer"].__setitem__("t", "9"), None, "field 't'"),
    ("batch", lambda s: s.__setitem__("batch", 99), None, "field 'batch'"),
    ("epoch", lambda s: s.__setitem__("epoch", 7), None, "history has 1 epochs, its counter 7"),
    ("rng", lambda s: s["rng"].__setitem__("bit_generator", "MT19937"), None, "random generator state"),
    ("schedule", lambda s: s.__setitem__("schedule", {"scale": "x"}), None, "schedule state"),
    ("history", lambda s: s["history"].__setitem__("loss", [1.0, 2.0]), None, "history"),
    ("callback", lambda s: s["callbacks"].__setitem__("0.EarlyStopping", [1]), None, "callback"),
    ("data shape", lambda s: s.__setitem__("data_shape", [240, 64, 10]), None, "data_shape"),
])
def test_every_field_is_validated(tmp_path, checkpoint, name, change_state, change_tensors, message):
    path = _forge(checkpoint, tmp_path / "forged.ckpt", change_state, change_tensors)
    with pytest.raises(dp.ModelFileError, match=message):
        dp.load_checkpoint(path)


def test_resume_refuses_other_data_or_settings(tmp_path):
    ckpt = str(tmp_path / "run.ckpt")
    _train(1, checkpoint=ckpt)
    other = X_ALL[300:600] / 16  # the same shape, other rows
    with pytest.raises(ValueError, match="other training data"):
        _train(1, X=other, resume=ckpt)
    for change, message in (({"l2": 0.01}, "l2=0.0 \\(now 0.01\\)"), ({"dropout": 0.2}, "dropout"),
                            ({"optimizer": "sgd"}, "optimizer"), ({"schedule": "cosine"}, "schedule"),
                            ({"optimizer": dp.Adam(learning_rate=0.01)}, "learning_rate")):
        with pytest.raises(ValueError, match=message):
            _train(1, resume=ckpt, **change)
    net, state = _train(2, resume=ckpt)  # the run's own data and settings, until 2 epochs in all
    assert state.epoch == 2


def test_a_stopped_run_records_why_before_its_last_checkpoint(tmp_path):
    ckpt = str(tmp_path / "run.ckpt")
    net, state = _train(20, checkpoint=ckpt, grad_tol=1e6)
    assert state.history.stop_reason.startswith("gradient norm") and state.epoch == 1
    assert dp.load_checkpoint(ckpt).history.stop_reason == state.history.stop_reason
    again_net, again = _train(5, resume=ckpt, grad_tol=1e6)  # finished: no further epoch
    assert again.epoch == 1 and again.history.stop_reason == state.history.stop_reason
    assert again_net.theta.tobytes() == net.theta.tobytes()
    ckpt2 = str(tmp_path / "budget.ckpt")
    _train(1, checkpoint=ckpt2)  # ended by its epoch budget: not finished, it continues to a larger one
    assert not dp.load_checkpoint(ckpt2).history.stopped and _train(2, resume=ckpt2)[1].epoch == 2


def test_a_callback_state_that_does_not_fit_the_callback_is_refused_on_resume(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    _train(1, checkpoint=str(ckpt), early_stopping=5)
    _forge(ckpt, ckpt, lambda s: s["callbacks"]["0.EarlyStopping"].__setitem__("wait", -3))
    with pytest.raises(ValueError, match="early stopping: malformed state"):
        _train(1, resume=str(ckpt), early_stopping=5)


class SignalAt:
    """Sends ``sig`` to this process at the end of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch, batch, sig=None):
        import signal

        self.epoch, self.batch, self.sig = epoch, batch, sig or signal.SIGINT

    def on_batch_end(self, batch, loss, net, state):
        import os

        if (state.epoch, batch) == (self.epoch, self.batch):
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("batch_size, batch", [(64, 0), (64, 2), (64, 3), (None, 0)])  # 4 batches, or one
def test_a_signal_at_any_batch_leaves_a_valid_checkpoint_that_resumes_bit_for_bit(tmp_path, batch_size, batch):
    """Also during an epoch's last batch (and the checkpoint written at its end): the epoch
    ends first, and the checkpoint is of the next epoch's first boundary."""
    ckpt = str(tmp_path / "run.ckpt")
    with pytest.raises(dp.TrainingInterrupted) as stopped:
        _train(4, batch_size=batch_size, checkpoint=ckpt, resume=ckpt, callbacks=[SignalAt(1, batch)])
    saved = dp.load_checkpoint(ckpt)  # valid
    last = batch == (3 if batch_size else 0)
    assert (saved.epoch, saved.batch) == ((2, 0) if last else (1, batch + 1))
    assert stopped.value.state.epoch == saved.epoch and stopped.value.state.batch == saved.batch
    net, state = _train(4, batch_size=batch_size, checkpoint=ckpt, resume=ckpt)  # the same call again
    straight, expected = _train(4, batch_size=batch_size)
    assert net.theta.tobytes() == straight.theta.tobytes()
    assert state.history.loss == expected.history.loss and state.epoch == 4


def test_the_same_resume_call_starts_continues_and_ends_the_run(tmp_path):
    """train(..., epochs=N, checkpoint=ck, resume=ck) is idempotent: N is the run's total."""
    ckpt = str(tmp_path / "run.ckpt")
    call = dict(checkpoint=ckpt, resume=ckpt, early_stopping=3, optimizer=dp.Adam(learning_rate=0.05))
    straight, expected = _train(40, early_stopping=3, optimizer=dp.Adam(learning_rate=0.05))
    assert expected.history.stopped and expected.history.best_epoch < expected.epoch  # restored best weights
    with pytest.raises(dp.TrainingInterrupted):  # the first call: no checkpoint yet; then a crash
        _train(40, callbacks=[SignalAt(2, 1)], **call)
    net, state = _train(40, **call)  # after the crash
    assert net.theta.tobytes() == straight.theta.tobytes() and state.history.loss == expected.history.loss
    again, done = _train(40, **call)  # after the end: nothing more, the finished run's weights
    assert again.theta.tobytes() == straight.theta.tobytes() and done.epoch == expected.epoch
    # k epochs with a checkpoint, then resume=ck for n in all: the n epochs of one call
    ck2 = str(tmp_path / "k.ckpt")
    _train(3, checkpoint=ck2)
    net6, state6 = _train(6, resume=ck2)
    assert net6.theta.tobytes() == _train(6)[0].theta.tobytes() and state6.epoch == 6
    with pytest.raises(Exception, match="does not exist"):  # a resume that is not the run's own checkpoint
        _train(6, resume=str(tmp_path / "typo.ckpt"), checkpoint=ckpt)


def test_a_kill_at_any_moment_leaves_the_previous_checkpoint_or_the_new_one(tmp_path):
    """SIGKILL, which nothing can catch, at staggered moments of a run that writes a
    checkpoint after every epoch: what is on disk always loads. Each kill is timed from the
    process's own first write (not from its start, which a loaded machine delays), so that
    it lands among the writes, at a different phase each time."""
    import subprocess
    import sys
    import time

    path = tmp_path / "run.ckpt"
    script = (f"import numpy as np, deltaprop as dp\n"
              f"rng = np.random.default_rng(0); X = rng.normal(size=(4000, 64)); y = rng.integers(0, 10, 4000)\n"
              f"dp.train(dp.Network([64, 256, 10], seed=0), X, y, epochs=100000, batch_size=2000, "
              f"checkpoint={str(path)!r}, seed=0)\n")

    def written() -> tuple:
        try:
            st = path.stat()
        except FileNotFoundError:
            return ()
        return st.st_ino, st.st_mtime_ns  # an atomic write (rename) makes a new file

    for delay in (0.0, 0.031, 0.077, 0.13, 0.21):
        before = written()
        proc = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 120
        while written() == before:
            assert proc.poll() is None and time.monotonic() < deadline, "the run wrote no checkpoint"
            time.sleep(0.005)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        state = dp.load_checkpoint(path)  # the previous checkpoint or the new one, never a broken file
        assert state.epoch >= 1
    assert len(list(tmp_path.glob(".run.ckpt.*.tmp"))) <= 1  # (the last kill's; the next write removes it)
