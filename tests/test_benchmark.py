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


def test_the_backend_epoch_benchmark_trains_on_each_backend_beside_numpy():
    """The check a GPU machine runs (numpy and cupy), here on the CPU's proof backend: each
    backend's epoch time, its ratio to NumPy's and how far its weights are from NumPy's."""
    from conftest import need

    need("torch"), need("array_api_compat")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "backend_epoch.py"), "--backends", "numpy",
                           "torch", "--n", "600", "--epochs", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[-2:]}
    assert set(rows) == {"numpy", "torch"} and float(rows["numpy"][1]) == 1.0
    assert float(rows["torch"][0]) > 0 and float(rows["torch"][3]) < 1e-3  # (float32 rounding over one epoch)
    assert "machine:" in proc.stdout and "versions:" in proc.stdout
