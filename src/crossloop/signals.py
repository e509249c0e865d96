"""SIGINT and SIGTERM as a request to stop after the current step.

Ctrl-C or a scheduler's SIGTERM during ``Trainer.fit`` must not tear a step, a
checkpoint write or a metric read apart: :func:`stop_on_signals` replaces the
two handlers, for the length of a ``with`` block, by one that only records the
signal, and restores the previous handlers after. Signal handlers can only be
set from the main thread; elsewhere the block runs unchanged.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """Inside the block, SIGINT/SIGTERM call ``stop(name)`` (e.g. ``"SIGTERM"``) instead
    of interrupting."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: stop(signal.Signals(signum).name))
                for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
