"""Data-parallel training over two processes, started as users start them (``mpiexec -n 2``,
``torchrun``), each rank running tests/training/distributed_worker.py.

mpi4py and the mpich wheel are the ``[mpi]`` extra; without them these tests are skipped
here, and fail in CI (``DELTAPROP_CI=1``), which installs every extra.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.core.engine import Workspace
from deltaprop.data.sources import BlockSource
from conftest import need

WORKER = Path(__file__).with_name("distributed_worker.py")
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import digits, options  # noqa: E402




def launcher(backend: str) -> list:
    bin_dir = Path(sys.executable).parent
    if backend == "mpi":
        need("mpi4py")
        exe = shutil.which("mpiexec", path=str(bin_dir)) or shutil.which("mpiexec")
        return [exe, "-n", "2", sys.executable]
    need("torch")  # torchrun, which runs the script with this interpreter
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
            str(29500 + os.getpid() % 1000)]


def launch(backend, scenario, out, **kwargs):
    return subprocess.Popen([*launcher(backend), str(WORKER), backend, scenario, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def run(backend, scenario, out, timeout=120):
    proc = launch(backend, scenario, out)
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output
    return [np.load(out / f"{scenario}.rank{r}.npz") for r in (0, 1)]


@pytest.mark.parametrize("backend, scenario", [("mpi", "adam"), ("mpi", "sgd-weighted"), ("torch", "adam")])
def test_two_processes_take_the_steps_of_one(tmp_path, backend, scenario):
    ranks = run(backend, scenario, tmp_path)
    # every rank took the same steps: the same weights, bit for bit
    np.testing.assert_array_equal(ranks[0]["theta"], ranks[1]["theta"])
    # one process on the same global batches (the same seed): the same weights, up to the
    # order of the additions (sample weights, alpha, l2, clipping and validation included)
    X, y, opts = options(scenario)
    net = dp.Network([64, 16, 10], seed=0, dtype="float64")
    state = dp.train(net, X, y, **opts)
    theta = ranks[0]["theta"]
    assert np.linalg.norm(theta - net.theta) <= 1e-6 * np.linalg.norm(net.theta)
    assert int(ranks[0]["steps"]) == state.optimizer.t >= 10
    np.testing.assert_allclose(ranks[0]["loss"], state.history.loss, rtol=1e-9)
    np.testing.assert_allclose(ranks[1]["val_loss"], state.history.val_loss, rtol=1e-9)


def test_blocks_are_shared_out_and_each_step_adds_both_parts(tmp_path):
    ranks = run("mpi", "blocks", tmp_path)
    np.testing.assert_array_equal(ranks[0]["theta"], ranks[1]["theta"])
    # replay in one process: each step's global batch is rank 0's part and rank 1's part of it
    X, y = digits()
    blocks = dp.Blocks.from_arrays(X, y, block_rows=40)
    net = dp.Network([64, 16, 10], seed=0, dtype="float64")
    order = ranks[0]["order"]
    parts = []
    for r in (0, 1):
        source = BlockSource(blocks, 32, net.dtype, net.encode_targets, buffer_blocks=2, prefetch=False)
        source.shard(r, 2)
        parts.append(source)
    steps = parts[0].steps(order)
    assert steps == parts[1].steps(order) == int(ranks[0]["steps"])
    adam, objective = dp.Adam(), dp.Objective(net)
    st = adam.init_state(net.theta, net.layer_slices())
    seen = []
    for k in range(steps):
        batch = []
        for source in parts:
            ws = Workspace(net.sizes, 32, net.dtype)
            b = source.fill(ws, order, k)
            batch.append((ws.X[:b].copy(), ws.T[:b].copy()))
            seen.append(ws.X[:b].copy())
        Xb, Tb = np.concatenate([p[0] for p in batch]), np.concatenate([p[1] for p in batch])
        _, grad = objective.value_and_grad(net.theta, (Xb, Tb))
        adam.step(net.theta, grad, st)
    assert len(np.concatenate(seen)) == len(X)  # every row once, over both ranks
    assert np.linalg.norm(ranks[0]["theta"] - net.theta) <= 1e-6 * np.linalg.norm(net.theta)


def test_a_checkpoint_taken_under_two_processes_resumes_to_the_same_result(tmp_path):
    """With dropout, so that each rank's own mask generator must come back too; the run is
    interrupted mid-epoch by a signal to rank 0 alone, which every rank obeys at the same batch."""
    whole = run("mpi", "whole", tmp_path)
    resumed = run("mpi", "resume", tmp_path)
    assert list(resumed[0]["stopped_at"]) == list(resumed[1]["stopped_at"]) == [1, 6]
    for r in (0, 1):
        np.testing.assert_array_equal(resumed[r]["theta"], whole[r]["theta"])
    # from an epoch's end, any number of processes may continue (here: one)
    X, y = digits()
    net = dp.Network([64, 16, 10], seed=0, dtype="float64")
    state = dp.train(net, X, y, epochs=4, resume=str(tmp_path / "whole.ckpt"), optimizer="adam", batch_size=32,
                     seed=11, dropout=0.2)
    assert state.history.epochs == 4 and state.optimizer.t == 4 * 10


def test_a_checkpoint_from_mid_epoch_needs_as_many_processes(tmp_path):
    class StopAt:
        def on_batch_end(self, k, J, net, state):
            if k == 3:
                os.kill(os.getpid(), signal.SIGINT)

    X, y = digits()
    with pytest.raises(dp.TrainingInterrupted):
        dp.train(dp.Network([64, 8, 10], seed=0), X, y, epochs=2, checkpoint=str(tmp_path / "c.ckpt"),
                 callbacks=[StopAt()])

    class TwoHere(dp.Communicator):  # rank 0 of 2 (its collectives: one process's)
        size = 2

        def abort(self, message, code=1):
            raise SystemExit(message)

    with pytest.raises(SystemExit, match=r"stopped mid-epoch in a run of 1 process\(es\), not 2"):
        dp.train(dp.Network([64, 8, 10], seed=0), X, y, epochs=1, resume=str(tmp_path / "c.ckpt"),
                 distributed=TwoHere())


@pytest.mark.parametrize("backend, seconds", [("mpi", 10), ("torch", 30)])  # (torchrun alone takes ~5 s)
def test_an_error_on_one_rank_ends_every_rank_with_a_clear_message(tmp_path, backend, seconds):
    t0 = time.perf_counter()
    proc = launch(backend, "fail", tmp_path)
    output, _ = proc.communicate(timeout=60)
    assert time.perf_counter() - t0 < seconds
    assert proc.returncode != 0
    assert "error on rank 1 of 2: OSError: block 3: read error (simulated)" in output
    assert not list(tmp_path.glob("fail.rank*.npz"))  # no rank finished


@pytest.mark.parametrize("sig, cause", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_a_signal_to_the_launcher_stops_every_rank_at_the_same_batch(tmp_path, sig, cause):
    proc = launch("mpi", "long", tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else ""
        time.sleep(0.1)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    ranks = [np.load(tmp_path / f"long.rank{r}.npz") for r in (0, 1)]
    assert [str(r["cause"]) for r in ranks] == [cause, cause]
    assert list(ranks[0]["batch"]) == list(ranks[1]["batch"])
    np.testing.assert_array_equal(ranks[0]["theta"], ranks[1]["theta"])
    state = dp.load_checkpoint(tmp_path / "long.ckpt")
    assert [state.epoch, state.batch] == list(ranks[0]["batch"])


def test_one_process_needs_no_engine_and_names_are_checked():
    comm = dp.get_communicator(None)
    assert (comm.rank, comm.size) == (0, 1)
    buffer = np.arange(3.0)
    comm.allreduce(buffer)
    np.testing.assert_array_equal(buffer, [0, 1, 2])
    with pytest.raises(ValueError, match="distributed: unknown name 'nccl'; expected one of mpi, torch"):
        dp.get_communicator("nccl")


def test_torch_outside_torchrun_says_how_to_start(monkeypatch):
    need("torch")
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node P"):
        dp.get_communicator("torch")


def test_ranks_that_share_a_machine_share_its_cores(monkeypatch):
    threadpoolctl = need("threadpoolctl")
    import deltaprop.threads as threads

    class FourHere(dp.Communicator):  # one process of four on this machine (collectives: one process)
        local_size = 4

    seen = []

    class BlasThreads:
        def on_epoch_end(self, epoch, history, net):
            seen.append(max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"))

    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    X, y = digits(320)
    net = dp.Network([64, 512, 10], seed=0)  # batch 320 x 65 x 512: above the one-thread size
    dp.train(net, X, y, batch_size=None, epochs=1, distributed=FourHere(), callbacks=[BlasThreads()])
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    dp.train(net, X, y, batch_size=None, epochs=1, distributed=FourHere(), callbacks=[BlasThreads()])
    assert seen[0] == 1 and seen[1] == min(2, os.cpu_count())


def test_ranks_whose_weights_differ_are_stopped():
    """At each epoch's end the ranks compare their weights; a rank that took another step
    (here: a communicator that reports another rank's digest) ends the run."""

    class Diverging(dp.Communicator):  # rank 0 of 2, whose partner's weights are not its own
        size = 2

        def allgather_object(self, obj):
            return [obj, "0" * len(obj)] if isinstance(obj, str) else [obj, obj]

        def abort(self, message, code=1):
            raise SystemExit(message)

    X, y = digits(64)
    with pytest.raises(SystemExit, match="the ranks' weights differ after epoch 1"):
        dp.train(dp.Network([64, 8, 10], seed=0), X, y, epochs=1, distributed=Diverging())
