"""One rank of a data-parallel run, started by tests/training/test_distributed.py under
``mpiexec -n 2`` (or ``torchrun``): ``python distributed_worker.py BACKEND SCENARIO OUT``.

Each rank writes what it ended with to ``OUT/<scenario>.rank<r>.npz`` (its weights, its
history's losses, its steps), for the test to compare with one process.
"""

import os
import signal
import sys

import numpy as np
from sklearn.datasets import load_digits

import deltaprop as dp


def digits(n=320):
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16.0), y[:n]


def options(scenario):
    """The training options of each scenario (the test runs one process with the same)."""
    if scenario == "sgd-weighted":
        X, y = digits()
        w = np.where(y < 5, 2.0, 0.5)
        return X, y, dict(sample_weight=w, optimizer=dp.SGD(learning_rate=0.2), batch_size=32, alpha=1e-3,
                          l2=1e-4, clip_norm=5.0, validation=0.25, seed=3, epochs=2)
    X, y = digits()
    return X, y, dict(optimizer="adam", batch_size=32, seed=5, epochs=1)


class SignalAt:
    """Rank 0 signals itself after batch ``k`` of epoch ``epoch`` (as a Ctrl-C would)."""

    def __init__(self, epoch, k, sig=signal.SIGINT):
        self.epoch, self.k, self.sig = epoch, k, sig

    def on_batch_end(self, k, J, net, state):
        if state.epoch == self.epoch and k == self.k:
            os.kill(os.getpid(), self.sig)


class Broken:
    """A block that cannot be read on rank 1 (a damaged file that only rank 1 reads)."""

    def __init__(self, n, rank):
        self.n, self.rank = n, rank

    def read(self):
        if self.rank == 1:
            raise OSError("block 3: read error (simulated)")
        rng = np.random.default_rng(0)
        return rng.normal(size=(self.n, 8)), rng.integers(0, 2, self.n), None


def main(backend, scenario, out):
    comm = dp.get_communicator(backend)
    rank = comm.rank
    save = {}
    if scenario in ("adam", "sgd-weighted"):
        X, y, opts = options(scenario)
        net = dp.Network([64, 16, 10], seed=rank, dtype="float64")  # rank 0's weights win
        state = dp.train(net, X, y, distributed=comm, **opts)
        save = dict(theta=net.theta, loss=state.history.loss, val_loss=state.history.val_loss,
                    steps=state.optimizer.t)
    elif scenario == "blocks":
        X, y = digits()
        blocks = dp.Blocks.from_arrays(X, y, block_rows=40)
        net = dp.Network([64, 16, 10], seed=0, dtype="float64")
        state = dp.train(net, blocks, optimizer="adam", batch_size=32, seed=7, epochs=1, distributed=comm,
                         buffer_blocks=2)
        save = dict(theta=net.theta, steps=state.optimizer.t, order=state.order)
    elif scenario in ("whole", "resume"):
        # dropout: each rank's masks come from its own generator, which the checkpoint keeps
        X, y = digits()
        net = dp.Network([64, 16, 10], seed=0, dtype="float64")
        opts = dict(optimizer="adam", batch_size=32, seed=11, dropout=0.2, distributed=comm)
        ckpt = os.path.join(out, "resume.ckpt")
        if scenario == "whole":  # (its checkpoint, at an epoch's end, is resumed by one process)
            dp.train(net, X, y, epochs=3, checkpoint=os.path.join(out, "whole.ckpt"), **opts)
        else:
            try:
                dp.train(net, X, y, epochs=3, checkpoint=ckpt, callbacks=[SignalAt(1, 4)], **opts)
                raise SystemExit("not interrupted")
            except dp.TrainingInterrupted as e:
                save["stopped_at"] = [e.state.epoch, e.state.batch]
            net = dp.Network([64, 16, 10], seed=0, dtype="float64")
            dp.train(net, X, y, epochs=3, resume=ckpt, **opts)  # the run's total
        save["theta"] = net.theta
    elif scenario == "fail":
        blocks = dp.Blocks([Broken(50, rank) for _ in range(6)], 8, False, "broken")
        dp.train(dp.Network([8, 4, 2], seed=0), blocks, batch_size=10, epochs=1, distributed=comm)
    elif scenario == "long":  # until a signal from outside stops it
        X, y = digits(1797)
        net = dp.Network([64, 256, 10], seed=0)

        class Started:
            def on_epoch_end(self, epoch, history, net):
                open(os.path.join(out, "started"), "w").close()

        try:
            dp.train(net, X, y, epochs=100000, batch_size=16, distributed=comm, callbacks=[Started()],
                     checkpoint=os.path.join(out, "long.ckpt"))
        except dp.TrainingInterrupted as e:
            save = dict(cause=e.cause, batch=[e.state.epoch, e.state.batch], theta=net.theta)
    np.savez(os.path.join(out, f"{scenario}.rank{rank}.npz"), **save)


if __name__ == "__main__":
    main(*sys.argv[1:4])
