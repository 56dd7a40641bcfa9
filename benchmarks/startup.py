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

``--baseline DIR`` adds another deltaprop checkout (its ``src`` first on the path) as a
third contender, interleaved with the other two: before and after, in one run.

    python benchmarks/startup.py --reps 5
    git worktree add /tmp/before <commit>; python benchmarks/startup.py --baseline /tmp/before
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


def run_once(code: str, path: str | None = None) -> float:
    """Seconds of one whole process running ``code`` (with ``path`` first on its PYTHONPATH)."""
    env = dict(os.environ)
    # as after `pip install`: bytecode is written once and read after. Without this (some machines set
    # PYTHONDONTWRITEBYTECODE), deltaprop's source compiles in every process while scikit-learn's
    # installed bytecode loads: about 0.1 s against deltaprop that no user pays
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path, env.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def measure(reps: int = 5, baseline: str | None = None, cases=tuple(CASES)) -> dict:
    """{case: {contender: median seconds, ..., "ratio": deltaprop's over scikit-learn's}}."""
    contenders = {name: (module, None) for name, module in MODULES.items()}
    if baseline:
        contenders["baseline"] = ("deltaprop", os.path.join(os.path.abspath(baseline), "src"))
    out = {}
    for case in cases:
        template = CASES[case]
        for module, path in contenders.values():  # (once each first: the disk caches warm, Numba's included)
            run_once(template.format(module=module), path)
        times = {name: [] for name in contenders}
        for _ in range(reps):
            for name, (module, path) in contenders.items():
                times[name].append(run_once(template.format(module=module), path))
        row = {name: statistics.median(t) for name, t in times.items()}
        row["ratio"] = statistics.median(a / b for a, b in zip(times["deltaprop"], times["sklearn"]))
        if baseline:
            row["baseline_ratio"] = statistics.median(a / b for a, b in zip(times["baseline"], times["sklearn"]))
        out[case] = row
        print(f"# startup {case}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    return {"reps": reps, "baseline": baseline, "results": out}


def markdown(report: dict) -> list[str]:
    base = report.get("baseline")
    lines = [f"## Small fits, whole processes (median of {report['reps']} interleaved runs; seconds)", "",
             "ratio: the median of deltaprop's time over scikit-learn's in neighbouring runs (below 1: faster)"
             + (f"; baseline: the deltaprop of {base}" if base else "") + ".", "",
             "| case | deltaprop | scikit-learn | ratio |" + (" baseline | baseline ratio |" if base else ""),
             "|---|---|---|---|" + ("---|---|" if base else "")]
    for case, r in report["results"].items():
        lines.append(f"| {case} | {r['deltaprop']:.2f} | {r['sklearn']:.2f} | {r['ratio']:.2f} |"
                     + (f" {r['baseline']:.2f} | {r['baseline_ratio']:.2f} |" if base else ""))
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--baseline", metavar="DIR", help="another deltaprop checkout, timed beside this one")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="the cases to run")
    args = parser.parse_args(argv)
    from importlib.metadata import version

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, " + ", ".join(
        f"{m} {version(m)}" for m in ("numpy", "scikit-learn", "deltaprop", "numba", "skl2onnx")
        if _installed(m)), flush=True)
    print("bytecode: written on the first run and read after (PYTHONDONTWRITEBYTECODE unset)", flush=True)
    print("\n".join(markdown(measure(args.reps, args.baseline, args.cases))))
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
