"""``main``: parse, run the command, and turn every failure into one line and an exit status."""

from __future__ import annotations

import os
import signal
import sys
import threading

from .common import CLIError, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE
from .parser import build_parser, unrecognized


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    from .. import DataError, DivergenceError, ModelFileError

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        parser = build_parser()
        args, extras = parser.parse_known_args(argv)
        if extras:
            raise CLIError(unrecognized(extras, parser.commands.get(args.command, parser)))
        return args.func(args)
    except (CLIError, DataError, ModelFileError, DivergenceError, ValueError, TypeError, ImportError) as e:
        print(f"deltaprop: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (e.g. | head): not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as e:
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"deltaprop: error:{where} {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("deltaprop: error: out of memory (a smaller network, batch or data set would fit)", file=sys.stderr)
        return EXIT_USAGE
    except _Terminated:
        print("deltaprop: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("deltaprop: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(Exception):
    """SIGTERM outside training (which handles it itself, at a batch boundary)."""


def _on_sigterm(signum, frame):
    raise _Terminated


# the library's parameters as the command line spells them, for errors raised by the library
_FLAGS = {"validation": "--validation-fraction", "batch_size": "--batch-size", "early_stopping": "--early-stopping",
          "clip_norm": "--clip-norm", "max_norm": "--max-norm", "grad_tol": "--grad-tol", "l2": "--l2",
          "dropout": "--dropout", "epochs": "--epochs", "learning_rate": "--lr", "hidden": "--hidden",
          "checkpoint_every": "--checkpoint-every", "resume": "--resume", "kernels": "--kernels",
          "members": "--members", "bins": "--bins", "label_smoothing": "--label-smoothing",
          "features": "--features", "block_rows": "--block-rows"}


def _one_line(e) -> str:
    """The error in one line, in the command line's terms (``--batch-size``, not ``batch_size``)."""
    text = " ".join(str(e).split())
    text = text.replace("dtype='float64'", "--dtype float64")
    name, colon, rest = text.partition(": ")
    return f"{_FLAGS[name]}: {rest}" if colon and name in _FLAGS else text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
