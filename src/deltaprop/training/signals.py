"""Ctrl-C and SIGTERM during training: noted, so that the run stops at the next batch boundary."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable


@contextmanager
def signals_noted(note: Callable[[str], None]):
    """For as long as the context lasts, SIGINT and SIGTERM call ``note("interrupted")``
    or ``note("terminated")`` instead of stopping the program; the previous handlers
    come back after. Only the main thread can receive signals: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        note("terminated" if signum == signal.SIGTERM else "interrupted")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
