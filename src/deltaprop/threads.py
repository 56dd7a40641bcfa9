"""How many threads the BLAS library may use for a run's matrix products.

Small products gain nothing from a second BLAS thread: the hand-off costs more
than it saves, and OpenBLAS's idle worker spins, competing with the main thread's
single-threaded work (NumPy's element-wise passes, SciPy's L-BFGS update). Below a
size measured for each kind of run, training asks for one thread
(through threadpoolctl, which restores the setting afterwards); it never asks for
more threads than the library or the caller allow.
"""

from __future__ import annotations

import contextlib
import os


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def largest_product(sizes, batch_size: int) -> int:
    """Multiply-adds of the largest product of one forward pass: B (D_{l-1} + 1) D_l."""
    return max(batch_size * (sizes[l - 1] + 1) * sizes[l] for l in range(1, len(sizes)))


def blas_limit(threads: int | None, product: int, small: int):
    """A context that limits BLAS threads: to ``threads`` if given, else to one when
    ``product`` is below ``small``, else not at all (the library's own setting)."""
    if threads is None:
        threads = 1 if product < small else None
    if threads is None:
        return contextlib.nullcontext()
    controller = _controller()
    if controller is None:  # the core needs only NumPy: without threadpoolctl, leave BLAS as it is
        return contextlib.nullcontext()
    return controller.limit(limits=threads, user_api="blas")


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
