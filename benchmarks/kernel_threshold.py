"""Where Numba's fused kernels start to pay: the measurements behind NUMBA_MIN_WORK.

A run takes the NumPy path by default when its rows x parameters per epoch are below
``deltaprop.core.kernels.NUMBA_MIN_WORK``. This prints what that choice weighs, at one
BLAS thread:

- the cost of loading the kernels in a fresh process: the first one-epoch run on each
  path (Numba imported and its kernels read from the on-disk cache, against NumPy);
- for problems from iris to MNIST size, the epoch time on each path and what the fused
  kernels save per epoch, and how many epochs it takes to win back the loading cost.

    python benchmarks/kernel_threshold.py
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

# (rows, inputs, hidden widths, classes): iris, a small table, digits, a middling table, a large one, MNIST
SIZES = [(150, 4, (100,), 3), (1000, 20, (100,), 2), (1797, 64, (100,), 10), (5000, 50, (128, 64), 2),
         (20000, 100, (256, 128), 10), (60000, 784, (256, 128), 10)]

FIRST_RUN = """import time, numpy as np, deltaprop as dp
X = np.random.default_rng(0).normal(size=(150, 4)).astype(np.float32)
net = dp.Network([4, 100, 3], likelihood="categorical", seed=0)
t = time.perf_counter()
dp.train(net, X, np.arange(150) % 3, epochs=1, batch_size=200, kernels="{kernels}", seed=0)
print(time.perf_counter() - t)
"""


def load_cost(reps: int = 5) -> dict:
    """Median seconds of the first one-epoch run in a fresh process, per path."""
    times = {"numpy": [], "numba": []}
    for _ in range(reps):
        for kernels in times:
            out = subprocess.run([sys.executable, "-c", FIRST_RUN.format(kernels=kernels)], check=True,
                                 capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
            times[kernels].append(float(out.stdout))
    return {k: statistics.median(v) for k, v in times.items()}


def epoch_time(n, d, hidden, k, kernels, epochs):
    import deltaprop as dp

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, n)
    net = dp.Network([d, *hidden, k], likelihood="categorical", seed=0)
    dp.train(net, X, y, epochs=1, batch_size=200, kernels=kernels, seed=0)  # (warm)
    t = time.perf_counter()
    dp.train(net, X, y, epochs=epochs, batch_size=200, kernels=kernels, seed=0)
    return (time.perf_counter() - t) / epochs, net.n_params


def main() -> int:
    import numba
    from threadpoolctl import threadpool_limits

    import deltaprop
    from deltaprop.core.kernels import NUMBA_MIN_WORK

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}, "
          f"deltaprop {deltaprop.__version__}; one BLAS thread; NUMBA_MIN_WORK = {NUMBA_MIN_WORK:.0e}", flush=True)
    first = load_cost()
    cost = first["numba"] - first["numpy"]
    print(f"first run in a fresh process: numpy {first['numpy']:.3f} s, numba {first['numba']:.3f} s: "
          f"loading the kernels costs {cost:.2f} s", flush=True)
    print("| rows | parameters | rows x parameters | numpy ms/epoch | numba ms/epoch | saved ms/epoch "
          "| epochs to win back the load |\n|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for n, d, hidden, k in SIZES:
            epochs = 3 if n > 10_000 else 10
            a, params = epoch_time(n, d, hidden, k, "numpy", epochs)
            b, _ = epoch_time(n, d, hidden, k, "numba", epochs)
            saved = a - b
            win = f"{cost / saved:,.0f}" if saved > 0 else "never"
            print(f"| {n:,} | {params:,} | {n * params:.1e} | {1e3 * a:.2f} | {1e3 * b:.2f} | {1e3 * saved:.2f} "
                  f"| {win} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
