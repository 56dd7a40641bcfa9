"""The BLAS thread choice: CPUs from affinity and cgroup quota, the load of other processes,
the caller's limits, and changes while a run goes on; with faked CPU counts, loads and
libraries, then once for real through threadpoolctl."""

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.threads import (BUSY_SHARE, BlasThreads, LoadMeter, available_cpus, choose_threads,
                               cpu_busy_seconds, running_others)

SMALL = 10_000_000
BIG = 4 * SMALL


def test_available_cpus_is_joblibs_count_else_the_affinity(monkeypatch):
    """joblib's count (affinity, cgroup quota, LOKY_MAX_CPU_COUNT); the affinity without joblib."""
    import os
    import sys

    joblib = pytest.importorskip("joblib")
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus() == joblib.cpu_count() <= affinity
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")  # a limit joblib honours: so do we
    assert available_cpus() == 1
    monkeypatch.setitem(sys.modules, "joblib", None)
    assert available_cpus() == affinity


def test_busy_time_of_the_chosen_cpus(tmp_path):
    import os

    hz = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    #           user nice system idle iowait irq softirq steal
    stat.write_text(f"cpu  {3 * hz} 0 0 0 0 0 0 0 0 0\n"
                    f"cpu0 {hz} 0 {hz} 500 7 0 0 0 0 0\n"
                    f"cpu1 0 0 0 900 0 0 0 {hz} 0 0\n"
                    f"intr 12345\n")
    assert cpu_busy_seconds([0], stat) == 2.0  # idle and iowait are not busy
    assert cpu_busy_seconds([0, 1], stat) == 3.0  # stolen time is (another guest had the core)
    assert cpu_busy_seconds([0], tmp_path / "missing") is None


class Clocks:
    """Time, busy CPU seconds over our CPUs, and our own CPU seconds, moved by hand."""

    def __init__(self):
        self.t = self.busy = self.own = 0.0

    def run(self, seconds, ours, others):
        self.t += seconds
        self.own += ours * seconds
        self.busy += (ours + others) * seconds

    def meter(self):
        return LoadMeter([0, 1], busy=lambda cpus: self.busy, own=lambda: self.own, clock=lambda: self.t)


def test_the_load_of_others_is_busy_time_less_our_own():
    c = Clocks()
    m = c.meter()
    c.run(1.0, ours=1.0, others=0.0)
    assert m.others() == 0.0
    c.run(2.0, ours=1.2, others=0.8)  # our spinning BLAS threads are ours, not others'
    assert m.others() == pytest.approx(0.8)
    c.run(0.5, ours=2.0, others=0.0)
    assert m.others() == 0.0


@pytest.mark.parametrize("product, cpus, others, cap, expected", [
    (SMALL - 1, 8, 0.0, 8, 1),  # a small product: one thread, whatever the machine
    (BIG, 2, 0.0, 2, 2),  # idle: every CPU
    (BIG, 2, None, 2, 2),  # unknown load (no /proc/stat): as idle
    (BIG, 2, 1.0, 2, 1),  # one busy neighbour on two cores: one thread
    (BIG, 2, BUSY_SHARE, 2, 2),  # a light neighbour does not take a core
    (BIG, 2, BUSY_SHARE + 0.05, 2, 1),
    (BIG, 2, 3.0, 2, 1),  # never fewer than one
    (BIG, 8, 3.0, 8, 5),
    (BIG, 8, 0.0, 4, 4),  # the caller's cap
    (BIG, 8, 0.0, 1, 1),
])
def test_choose_threads(product, cpus, others, cap, expected):
    assert choose_threads(product, cpus, others, cap, SMALL) == expected


class FakeLibrary:
    def __init__(self, threads):
        self.threads, self.calls = threads, []

    def get_num_threads(self):
        return self.threads

    def set_num_threads(self, n):
        self.threads = n
        self.calls.append(n)


class FakeController:
    def __init__(self, lib):
        self.lib_controllers = [lib]

    def select(self, user_api):
        assert user_api == "blas"
        return self


def chooser(lib, clocks, product=BIG, threads=None, share=1, monkeypatch=None, running=0):
    if monkeypatch is not None:
        monkeypatch.setattr("deltaprop.threads.available_cpus", lambda: 2)
    return BlasThreads(product, SMALL, threads, share=share, every=0.0, meter=clocks.meter(),
                       controller=FakeController(lib), running_others=lambda: running)


def test_threads_running_now_less_our_own(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4\nprocs_running 4\nprocs_blocked 0\n")
    tasks = tmp_path / "task"
    for tid, state in ((1, "R"), (2, "S"), (3, "R")):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (python (3.11)) {state} 1 2 3\n")  # a name with ')'
    assert running_others(stat, tasks) == 2
    stat.write_text("cpu  1 2 3 4\n")
    assert running_others(stat, tasks) is None


def test_a_run_starts_from_who_runs_now_then_measures(monkeypatch):
    """The last interval's average may describe a neighbour that has ended (the benchmark's
    contenders take turns): a run starts from the threads running at that instant."""
    lib, c = FakeLibrary(2), Clocks()
    blas = chooser(lib, c, monkeypatch=monkeypatch, running=0)
    c.run(1.0, ours=0.0, others=2.0)  # busy, but no longer
    with blas:
        assert lib.threads == 2
        c.run(0.5, ours=2.0, others=0.0)  # the first interval starts with the run
        blas.tick()
        assert lib.threads == 2
    with chooser(lib, c, monkeypatch=monkeypatch, running=1):
        assert lib.threads == 1
    with chooser(lib, c, monkeypatch=monkeypatch, running=None):  # no /proc: the average, here idle
        assert lib.threads == 2


def test_a_run_gives_up_a_thread_to_a_neighbour_and_takes_it_back(monkeypatch):
    lib, c = FakeLibrary(2), Clocks()
    with chooser(lib, c, monkeypatch=monkeypatch) as blas:
        assert blas.threads == 2
        c.run(0.5, ours=2.0, others=0.0)
        blas.tick()
        assert lib.threads == 2
        c.run(0.5, ours=1.3, others=0.7)  # a CPU-bound neighbour starts (and gets less than a core)
        blas.tick()
        assert lib.threads == 1
        c.run(0.5, ours=1.0, others=1.0)
        blas.tick()
        assert lib.threads == 1
        c.run(0.5, ours=1.0, others=0.0)  # it ends
        blas.tick()
        assert lib.threads == 2
        assert blas.changes == 2
    assert lib.threads == 2 and lib.calls == [2, 1, 2, 2]  # the library's own setting, restored


def test_the_callers_limit_is_honoured(monkeypatch):
    """OMP_NUM_THREADS=1 or threadpool_limits(1) (joblib's workers): one thread, even when idle."""
    lib, c = FakeLibrary(1), Clocks()
    with chooser(lib, c, monkeypatch=monkeypatch) as blas:
        c.run(0.5, ours=1.0, others=0.0)
        blas.tick()
        assert lib.threads == 1
    lib, c = FakeLibrary(2), Clocks()
    with chooser(lib, c, threads=1, monkeypatch=monkeypatch) as blas:  # blas_threads=1
        c.run(0.5, ours=1.0, others=0.0)
        blas.tick()
        assert lib.threads == 1
    assert lib.threads == 2


def test_small_products_and_ranks_sharing_a_machine(monkeypatch):
    lib, c = FakeLibrary(2), Clocks()
    with chooser(lib, c, product=SMALL - 1, monkeypatch=monkeypatch):
        assert lib.threads == 1
    with chooser(lib, c, share=2, monkeypatch=monkeypatch):  # two ranks on two CPUs: one each
        assert lib.threads == 1
    assert lib.threads == 2


def test_ranks_on_one_machine_are_not_each_others_load(monkeypatch):
    """Two ranks on eight CPUs take four threads each: the other rank's four busy CPUs are
    its share, not a neighbour's load; a neighbour beyond them still takes a thread."""
    monkeypatch.setattr("deltaprop.threads.available_cpus", lambda: 8)
    lib, c = FakeLibrary(8), Clocks()
    with BlasThreads(BIG, SMALL, share=2, every=0.0, meter=c.meter(), controller=FakeController(lib),
                     running_others=lambda: 4) as blas:
        assert lib.threads == 4
        c.run(0.5, ours=4.0, others=4.0)
        blas.tick()
        assert lib.threads == 4
        c.run(0.5, ours=4.0, others=5.0)
        blas.tick()
        assert lib.threads == 3


def test_training_sets_and_restores_the_library_threads():
    """For real: a caller's threadpool_limits(1) holds inside training, and the library's
    setting is back afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []

    class Spy(dp.Callback):
        def on_batch_end(self, batch, loss, net, state):
            seen.append(min(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"))

    X, y = np.random.default_rng(0).normal(size=(64, 600)).astype(np.float32), np.arange(64) % 3

    def blas():  # (training may load another library, e.g. SciPy's own OpenBLAS: those found before)
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    before = blas()
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        dp.train(dp.Network([600, 900, 3]), X, y, epochs=1, batch_size=64, callbacks=[Spy()])
    assert seen and set(seen) == {1}
    assert {k: v for k, v in blas().items() if k in before} == before


def test_training_looks_at_the_load_after_every_step(monkeypatch):
    """The run's thread choice is revisited as it goes (tick is a clock check until it is due)."""
    ticks = []
    original = BlasThreads.tick
    monkeypatch.setattr(BlasThreads, "tick", lambda self: (ticks.append(self.threads), original(self)))
    # (products above BLAS_SINGLE_THREADED: 16 x 65 x 300 multiply-adds, so that there are threads to set)
    X, y = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32), np.arange(64) % 3
    dp.train(dp.Network([64, 300, 3]), X, y, epochs=2, batch_size=16)
    assert len(ticks) == 8 and all(t is not None for t in ticks)


def test_the_first_measurement_comes_sooner_then_every_half_second(monkeypatch):
    """Threads seen running at the start may be a neighbour's BLAS workers spinning out: the first
    interval is measured after 0.1 s, the next ones every ``every`` seconds."""
    import types

    import deltaprop.threads as threads

    now = [100.0]
    monkeypatch.setattr(threads, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    measured = []

    class Meter:
        def others(self):
            measured.append(now[0])
            return 0.0

    lib = FakeLibrary(2)
    with BlasThreads(BIG, SMALL, every=0.5, meter=Meter(), controller=FakeController(lib),
                     running_others=lambda: 1) as blas:
        assert lib.threads == 1 and measured == [100.0]  # one other thread running at the start
        for t in (100.05, 100.11, 100.3, 100.6, 100.62):
            now[0] = t
            blas.tick()
        assert measured == [100.0, 100.11, 100.62] and lib.threads == 2


def test_a_run_of_small_products_does_not_look_for_the_blas_libraries(monkeypatch):
    """Products of at most 64^3 multiply-adds run on one OpenBLAS thread anyway: a small fit
    does not pay threadpoolctl's search of the loaded libraries."""
    import deltaprop.threads as threads

    found = []
    monkeypatch.setattr(threads, "_controller", lambda: found.append(1) or None)
    with BlasThreads(threads.BLAS_SINGLE_THREADED, 10_000_000) as b:
        assert b.threads is None
    assert not found
    BlasThreads(threads.BLAS_SINGLE_THREADED + 1, 10_000_000)
    assert found == [1]
