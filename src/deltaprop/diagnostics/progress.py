"""Training progress for people: a tqdm bar on a terminal, plain lines elsewhere, a JSON log."""

from __future__ import annotations

import json
import math
import sys


def _describe(history, epoch: int) -> str:
    r = history.record(epoch)
    parts = [f"loss {r['loss']:.4f}"]
    if not math.isnan(r["val_loss"]):
        parts.append(f"val_loss {r['val_loss']:.4f}")
        parts.append(f"val_{history.metric} {r[f'val_{history.metric}']:.4f}")
    parts.append(f"lr {r['learning_rate']:.2g}")
    return "  ".join(parts)


class Progress:
    """A callback that shows each epoch: a progress bar with an ETA on a terminal,
    one plain line per epoch otherwise, nothing when ``quiet``."""

    def __init__(self, epochs: int, quiet: bool = False, stream=None, start_epoch: int = 0):
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.epochs = epochs
        self.bar = None
        if not quiet and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, initial=start_epoch, unit="epoch", file=self.stream,
                            dynamic_ncols=True, desc="training")

    def on_epoch_end(self, epoch, history, net):
        if self.quiet:
            return False
        line = _describe(history, epoch)
        if self.bar is not None:
            # a summary line per epoch above the bar, the bar itself with the ETA
            self.bar.write(f"epoch {epoch + 1}/{self.epochs}  {line}  {history.time[epoch] * 1000:.0f} ms")
            self.bar.set_postfix_str(line, refresh=False)
            self.bar.update(1)
        else:
            print(f"epoch {epoch + 1}/{self.epochs}  {line}  {history.time[epoch] * 1000:.0f} ms",
                  file=self.stream, flush=True)
        return False

    def close(self):
        if self.bar is not None:
            self.bar.close()


class JsonLog:
    """A callback that appends one JSON line per epoch to a file."""

    def __init__(self, path):
        self.path = path
        self.file = open(path, "w")

    def on_epoch_end(self, epoch, history, net):
        record = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                  for k, v in history.record(epoch).items()}  # NaN is not JSON
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        return False

    def close(self):
        self.file.close()
