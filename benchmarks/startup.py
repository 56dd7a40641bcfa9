"""Small fits as a user runs them: whole processes, deltaprop against scikit-learn.

Most MLP fits are small, and each process pays its start before it trains. Each case
below runs as a fresh ``python -c`` process, once with ``from deltaprop import
MLPClassifier`` and once with ``from sklearn.neural_network import MLPClassifier``, the
two interleaved, ``reps`` times; the figure is the median wall time of the whole process
(interpreter, imports, data, fit):

- ``import``: importing the estimator alone;
- ``iris``: ``MLPClassifier(max_iter=50).fit(iris)``;
- ``grid``: the README's ``GridSearchCV`` snippet (breast cancer, a scaler and an lbfgs
  MLP, 8 settings x 3 folds, ``n_jobs=2``: each worker process starts too), with
  ``tanh`` for ``gelu``, which scikit-learn does not have.

    python benchmarks/startup.py --reps 5
    python benchmarks/run.py --only --extras startup      # the same, in run.py's report
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

CASES = {
    "import": "from {module} import MLPClassifier\n",
    "iris": """import warnings
warnings.simplefilter("ignore")
from sklearn.datasets import load_iris
from {module} import MLPClassifier
X, y = load_iris(return_X_y=True)
MLPClassifier(max_iter=50, random_state=0).fit(X, y)
""",
    "grid": """from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from {module} import MLPClassifier
X, y = load_breast_cancer(return_X_y=True)
pipe = make_pipeline(StandardScaler(), MLPClassifier(solver="lbfgs", random_state=0))
grid = {{"mlpclassifier__hidden_layer_sizes": [(16,), (64,)], "mlpclassifier__alpha": [1e-4, 1e-1],
        "mlpclassifier__activation": ["relu", "tanh"]}}
search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
""",
}
MODULES = {"deltaprop": "deltaprop", "sklearn": "sklearn.neural_network"}


def run_once(code: str) -> float:
    """Seconds of one whole process running ``code``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def measure(reps: int = 5) -> dict:
    """{case: {library: median seconds, ..., "ratio": deltaprop's over scikit-learn's}}."""
    out = {}
    for case, template in CASES.items():
        for module in MODULES.values():  # (once each first: the disk caches warm, Numba's included)
            run_once(template.format(module=module))
        times = {name: [] for name in MODULES}
        for _ in range(reps):
            for name, module in MODULES.items():
                times[name].append(run_once(template.format(module=module)))
        row = {name: statistics.median(t) for name, t in times.items()}
        row["ratio"] = statistics.median(a / b for a, b in zip(times["deltaprop"], times["sklearn"]))
        out[case] = row
        print(f"# startup {case}: deltaprop {row['deltaprop']:.2f} s, scikit-learn {row['sklearn']:.2f} s, "
              f"ratio {row['ratio']:.2f}", flush=True)
    return {"reps": reps, "results": out}


def markdown(report: dict) -> list[str]:
    lines = [f"## Small fits, whole processes (median of {report['reps']} interleaved runs; seconds)", "",
             "ratio: the median of deltaprop's time over scikit-learn's in neighbouring runs (below 1: faster).",
             "", "| case | deltaprop | scikit-learn | ratio |", "|---|---|---|---|"]
    for case, r in report["results"].items():
        lines.append(f"| {case} | {r['deltaprop']:.2f} | {r['sklearn']:.2f} | {r['ratio']:.2f} |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    from importlib.metadata import version

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, " + ", ".join(
        f"{m} {version(m)}" for m in ("numpy", "scikit-learn", "deltaprop", "numba", "skl2onnx")
        if _installed(m)), flush=True)
    print("\n".join(markdown(measure(args.reps))))
    return 0


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
