"""The benchmark harness on a tiny configuration, so that it cannot silently break."""

import json
import subprocess
import sys
from pathlib import Path

from deltaprop.core.kernels import numba_available, resolve_kernels

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_runs_on_digits(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--data", "digits", "--reps", "1", "--threads", "1",
         "--contenders", "floor", "deltaprop", "sklearn", "--extras", "contention", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "digits-latest.json").read_text())
    assert report["machine"]["cores"] >= 1 and "numpy" in report["machine"]["versions"]
    (config,) = report["configs"]
    rows = config["results"]
    # deltaprop once per kernel path: the default first, the NumPy reference beside it
    assert report["kernels"]["deltaprop"] == resolve_kernels()
    assert set(rows) == {"floor", "sklearn"} | set(report["kernels"])
    assert set(report["kernels"].values()) == ({"numba", "numpy"} if numba_available() else {"numpy"})
    busy = report["contention"]["results"]["deltaprop"]
    assert busy["alone_1"] > 0 and busy["busy_1"] > 0 and busy["slowdown"] > 0
    dp = rows["deltaprop"]
    assert dp["epoch_s"] > 0 and dp["x_floor"] > 0 and dp["x_sklearn"] > 0 and dp["gflops"] > 0
    assert 0.5 < dp["test_accuracy"] <= 1.0
    assert dp["predict_per_s"] > 0 and dp["latency_us"] > 0
    md = (tmp_path / "digits-latest.md").read_text()
    assert "| deltaprop |" in md and "Machine:" in md and report["command"] in md and "CPU-bound process" in md


def test_estimator_benchmark_runs_on_digits(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "estimators.py"), "--data", "digits", "--max-iter", "2",
         "--reps", "1", "--seeds", "1", "--skip-agreement", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "estimators-digits.json").read_text())
    assert {(r["solver"], r["dtype"]) for r in report["speed"]} >= {("adam", "float64"), ("sgd", "float32"),
                                                                   ("adam", "float64, dtype='float32'")}
    assert all(r["ratio"] > 0 and 0 < r["deltaprop_accuracy"] <= 1 for r in report["speed"])
    assert {r["data"] for r in report["lbfgs"]} == {"digits", "breast_cancer"}
    assert report["partial_fit"]["deltaprop_ms"] > 0 and report["partial_fit"]["ratio"] > 0
    assert "Machine:" in (tmp_path / "estimators-digits.md").read_text()


def test_the_readme_documents_the_mnist_recipe_the_benchmark_measures():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cli_mnist import RECIPE

    assert f"--data path/to/mnist.pkl.gz {' '.join(RECIPE)}" in (ROOT / "README.md").read_text()


def test_diagnostics_overhead_benchmark_runs_on_digits():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "diagnostics_overhead.py"), "--data", "digits",
                           "--epochs", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "bit-identical weights" in proc.stdout and "overhead" in proc.stdout and "Machine:" in proc.stdout


def test_startup_benchmark_runs_whole_processes():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--reps", "1", "--cases", "import"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| import |"))
    deltaprop, sklearn, ratio = (float(v) for v in row.strip("| ").split(" | ")[1:])
    assert deltaprop > 0 and sklearn > 0 and ratio > 0
    assert "scikit-learn" in proc.stdout and "machine:" in proc.stdout
