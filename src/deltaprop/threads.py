"""How many threads the BLAS library may use for a run's matrix products.

Two things decide it, and both change while a run goes on:

- **the size of the products.** Small products gain nothing from a second thread:
  the hand-off costs more than it saves, and OpenBLAS's idle workers spin, competing
  with the main thread's single-threaded element-wise work. Below a size measured
  for each kind of run, one thread.
- **the CPUs actually free.** The CPUs this process may use (its affinity mask, and
  a cgroup CPU quota, as containers and Slurm set them: joblib counts them), less what other processes
  keep busy on them, measured from ``/proc/stat`` against this process's own CPU
  time. A BLAS product split over T threads waits for the slowest: when another
  process holds a core, one of those threads is descheduled and the product takes
  several times as long (``benchmarks/run.py --extras contention``: PyTorch's 2-thread
  epoch 3.7x slower beside one busy process, its 1-thread epoch unchanged). So a core counts as free only when
  others leave most of it idle, and the load is measured again every ``every``
  seconds, so that a run gives up its threads when a neighbour starts and takes them
  back when it ends. A run starts from the threads of other processes running at
  that instant (a CPU-bound neighbour always is).

The caller's limits are honoured: never more threads than the BLAS library had when
the run started (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, threadpoolctl's
``threadpool_limits``, which joblib sets in its workers), nor than ``blas_threads``.
Threads are set through threadpoolctl and restored when the run ends; without
threadpoolctl (the core needs only NumPy), BLAS is left as it is.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

# a core is counted as taken when other processes use more than this share of it
BUSY_SHARE = 0.25
# seconds before a run's first measurement of the load (later ones: every ``every`` seconds)
FIRST_INTERVAL = 0.1
# multiply-adds up to which OpenBLAS runs a product on one thread whatever its setting
# (interface/gemm.c: M N K <= 65536 x GEMM_MULTITHREAD_THRESHOLD, 4 by default): a run whose
# products are all that small has no threads to limit, and does not look for the BLAS libraries
# (threadpoolctl's search, about 10 ms, which a small fit's whole process feels)
BLAS_SINGLE_THREADED = 64 ** 3


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask), else all of the machine's."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def available_cpus() -> int:
    """The CPUs this process can use at once: joblib's count (installed with scikit-learn),
    which takes the affinity mask, a cgroup CPU quota (rounded up) and ``LOKY_MAX_CPU_COUNT``
    into account; without joblib, the affinity mask."""
    try:
        from joblib import cpu_count
    except ImportError:
        return max(1, len(allowed_cpus()))
    return max(1, cpu_count())


def cpu_busy_seconds(cpus, stat: str | os.PathLike = "/proc/stat") -> float | None:
    """Seconds of busy time (everything but idle and iowait; stolen time counts as busy)
    summed over the given CPUs since boot, from ``/proc/stat``; None where it cannot be read."""
    wanted = {f"cpu{c}" for c in cpus}
    try:
        lines = Path(stat).read_text().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            ticks += sum(values) - values[3] - values[4]
    return ticks / os.sysconf("SC_CLK_TCK")


def running_others(stat: str | os.PathLike = "/proc/stat", tasks: str | os.PathLike = "/proc/self/task") -> int | None:
    """Threads running or runnable right now that are not this process's: ``procs_running`` of
    ``/proc/stat`` less this process's threads in state R. None where it cannot be read."""
    try:
        running = next(int(line.split()[1]) for line in Path(stat).read_text().splitlines()
                       if line.startswith("procs_running"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    own = 0
    for task in Path(tasks).glob("*/stat"):
        try:
            own += task.read_text().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return max(0, running - max(1, own))


def own_cpu_seconds() -> float:
    """This process's CPU time (user + system, all threads)."""
    t = os.times()
    return t.user + t.system


class LoadMeter:
    """How many CPUs other processes keep busy on ours, between two readings.

    ``busy(cpus)`` and ``own()`` are the two clocks compared (``/proc/stat`` and
    ``os.times`` by default; tests pass their own).
    """

    def __init__(self, cpus=None, busy=cpu_busy_seconds, own=own_cpu_seconds, clock=time.monotonic):
        self.cpus = allowed_cpus() if cpus is None else list(cpus)
        self.busy, self.own, self.clock = busy, own, clock
        self._last = self._read()

    def _read(self):
        return self.clock(), self.busy(self.cpus), self.own()

    def others(self) -> float | None:
        """CPUs used by other processes since the previous call (None if unknown)."""
        now = self._read()
        (t0, b0, o0), (t1, b1, o1) = self._last, now
        self._last = now
        if b0 is None or b1 is None or t1 <= t0:
            return None
        return max(0.0, ((b1 - b0) - (o1 - o0)) / (t1 - t0))


def choose_threads(product: int, cpus: int, others: float | None, cap: int, small: int) -> int:
    """BLAS threads for products of ``product`` multiply-adds, on ``cpus`` CPUs of which
    other processes keep ``others`` busy, never more than ``cap``.

    One thread below ``small``; otherwise one per CPU not taken by others (a CPU is taken
    when they use more than :data:`BUSY_SHARE` of it).
    """
    if product < small or cap <= 1:
        return 1
    taken = 0 if not others else math.ceil(others - BUSY_SHARE)
    return max(1, min(cap, cpus - max(0, taken)))


class BlasThreads:
    """The BLAS threads of one run: chosen at the start, chosen again as the load changes.

    A context manager: entering sets the threads, :meth:`tick` (called once per step;
    it only looks at the clock until ``every`` seconds have passed) measures the load
    again and changes them if needed, leaving restores the library's setting.

    Parameters
    ----------
    product : int
        Multiply-adds of the run's largest product (:func:`largest_product`).
    small : int
        Below this, one thread.
    threads : int, optional
        The caller's choice (``blas_threads``): a cap, still lowered under load.
    share : int
        Processes of the same run on this machine (data-parallel ranks): each takes its part
        of the CPUs.
    every : float
        Seconds between measurements of the load.

    Attributes
    ----------
    threads : int or None
        The threads set now (None outside the context).
    changes : int
        How many times the choice changed during the run.
    """

    def __init__(self, product: int, small: int, threads: int | None = None, share: int = 1,
                 every: float = 0.5, meter: LoadMeter | None = None, controller="find",
                 running_others=running_others):
        self.product, self.small, self.requested, self.every = product, small, threads, every
        self.share = max(1, share)
        self.cpus = max(1, available_cpus() // self.share)
        self.meter = meter if meter is not None else _meter()
        self.running_others = running_others
        if controller == "find" and product <= BLAS_SINGLE_THREADED:
            controller = None  # (nothing to limit: see BLAS_SINGLE_THREADED)
        self._controller = _controller() if controller == "find" else controller
        self.threads = None
        self.changes = 0

    def __enter__(self) -> "BlasThreads":
        c = self._controller
        if c is None:
            return self
        self._original = [(lib, lib.get_num_threads()) for lib in c.select(user_api="blas").lib_controllers]
        library = min((n for _, n in self._original if n), default=1)
        self.cap = min(library, self.requested or library)
        # at the start, who runs right now (the last interval's average may describe a neighbour
        # that has ended since: the benchmark's contenders take turns); then averages
        others = self.running_others()
        average = self.meter.others()  # (also starts the first interval)
        if others is None:
            others = average
        others = self._not_ours(others)
        # the first measured interval comes sooner: threads seen running at one instant may be
        # a neighbour's BLAS workers spinning for a last few milliseconds
        self._next = time.monotonic() + min(self.every, FIRST_INTERVAL)
        self._set(choose_threads(self.product, self.cpus, others, self.cap, self.small))
        return self

    def tick(self) -> None:
        """Measure the load again once ``every`` seconds have passed; change the threads if needed."""
        if self.threads is None or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        self._set(choose_threads(self.product, self.cpus, self._not_ours(self.meter.others()), self.cap, self.small))

    def _not_ours(self, others: float | None) -> float | None:
        # the other ranks of this run on the machine are expected: they have their own share
        return None if others is None else max(0.0, others - (self.share - 1) * self.cpus)

    def _set(self, n: int) -> None:
        if n != self.threads:
            self.changes += self.threads is not None
            for lib, _ in self._original:
                lib.set_num_threads(n)
            self.threads = n

    def __exit__(self, *exc) -> None:
        if self.threads is not None:
            for lib, n in self._original:
                lib.set_num_threads(n)
            self.threads = None


def largest_product(sizes, batch_size: int) -> int:
    """Multiply-adds of the largest product of one forward pass: B (D_{l-1} + 1) D_l."""
    return max(batch_size * (sizes[l - 1] + 1) * sizes[l] for l in range(1, len(sizes)))


def blas_limit(threads: int | None, product: int, small: int):
    """A context that limits BLAS threads for a run that does not tick (L-BFGS): to
    ``threads`` or the size rule, from the CPUs free when it starts."""
    return BlasThreads(product, small, threads)


_METER: list = []


def _meter() -> LoadMeter:
    """The process's load meter: each run's first reading covers the time since the last run's."""
    if not _METER:
        _METER.append(LoadMeter())
    return _METER[0]


_CONTROLLER: list = []


def _controller():
    """One threadpoolctl controller for the process: finding the loaded libraries reads
    /proc/self/maps, about 3 ms, which a short ``partial_fit`` call should not pay each time
    (the limit itself reads and sets the thread counts of the libraries found then)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


# multiply-adds; on the 2-core development machine one BLAS thread was faster below it
# (784-256-128-10: batch 32, 0.85 s against 1.02 s an epoch; batch 64 and up, two threads won)
TRAINING_SMALL_PRODUCT = 10_000_000


def training_threads(sizes, batch_size: int, threads: int | None = None, share: int = 1) -> BlasThreads:
    """The BLAS threads of a training run of a network of these ``sizes`` and batches: from
    the size of its products and the CPUs free, measured again as it goes."""
    return BlasThreads(largest_product(sizes, batch_size), TRAINING_SMALL_PRODUCT, threads, share=share)
