"""Training progress for people: a tqdm bar on a terminal, plain lines elsewhere, a JSON log."""

from __future__ import annotations

import json
import math
import sys
import time

__all__ = ["Progress", "write_json_log"]


def _describe(history, epoch: int) -> str:
    r = history.record(epoch)
    parts = [f"loss {r['loss']:.4f}"]
    if not math.isnan(r["val_loss"]):
        parts.append(f"val_loss {r['val_loss']:.4f}")
        parts.append(f"val_{history.metric} {r[f'val_{history.metric}']:.4f}")
    parts.append(f"lr {r['learning_rate']:.2g}")
    return "  ".join(parts)


class Progress:
    """A callback that shows training as it goes: a progress bar counting samples, with
    throughput and ETA, on a terminal (so that a long epoch is not a still screen);
    elsewhere one plain line per epoch, plus a line every ``interval`` seconds inside
    an epoch that takes longer; nothing when ``quiet``."""

    def __init__(self, epochs: int, quiet: bool = False, stream=None, interval: float = 10.0):
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.epochs, self.interval = epochs, interval  # epochs: of the whole run, a resumed one included
        self.bar = None
        self.n_samples = self.batch_size = self.n_batches = 0

    def on_train_begin(self, net, state):
        self.n_samples, _, _, self.batch_size = state.data_shape
        self.n_batches = -(-self.n_samples // self.batch_size)
        if not self.quiet and self.tty and self.bar is None:
            from tqdm import tqdm

            done = state.epoch * self.n_samples + min(state.batch * self.batch_size, self.n_samples)
            self.bar = tqdm(total=self.epochs * self.n_samples, initial=done, unit="sample", unit_scale=True,
                            file=self.stream, dynamic_ncols=True,
                            desc=f"epoch {state.epoch + 1}/{self.epochs}",
                            mininterval=0.2)
        self.t_last = self.t_epoch = time.perf_counter()

    def on_epoch_begin(self, epoch, net, state):
        if self.bar is not None:
            self.bar.set_description_str(f"epoch {epoch + 1}/{self.epochs}", refresh=False)
        self.t_last = self.t_epoch = time.perf_counter()

    def on_batch_end(self, batch, loss, net, state):
        if self.quiet:
            return
        rows = min(self.batch_size, self.n_samples - batch * self.batch_size)
        if self.bar is not None:
            self.bar.update(rows)
            return
        now = time.perf_counter()
        if now - self.t_last >= self.interval:  # a long epoch: say where it is
            self.t_last = now
            done = (batch + 1) / self.n_batches
            rate = (batch + 1) * self.batch_size / (now - self.t_epoch)
            print(f"epoch {state.epoch + 1}/{self.epochs}: batch {batch + 1}/{self.n_batches}, "
                  f"{rate:,.0f} samples/s, epoch ETA {(now - self.t_epoch) * (1 / done - 1):.0f} s",
                  file=self.stream, flush=True)

    def on_epoch_end(self, epoch, history, net):
        if self.quiet:
            return False
        line = (f"epoch {epoch + 1}/{self.epochs}  {_describe(history, epoch)}  "
                f"{history.time[epoch] * 1000:.0f} ms")
        if self.bar is not None:
            self.bar.write(line)  # a summary line per epoch above the bar
            self.bar.set_postfix_str(_describe(history, epoch), refresh=False)
        else:
            print(line, file=self.stream, flush=True)
        return False

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_json_log(history, path) -> None:
    """Write ``history`` as one JSON object per epoch (JSON Lines), atomically: a run
    writes its log once it is over, so a failed run never truncates an existing file."""
    from ..io.files import atomic_write

    lines = [json.dumps(_no_nan(history.record(epoch))) + "\n" for epoch in range(history.epochs)]
    atomic_write(path, lambda f: f.write("".join(lines).encode()))


def _no_nan(value):
    """NaN is not JSON: None in its place, at any depth."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value
