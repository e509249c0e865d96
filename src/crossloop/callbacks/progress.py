"""Progress displays: a live tqdm bar on a terminal, one plain line per epoch elsewhere.

:func:`progress_callback` picks the display: the bar when the stream (stderr by
default) is a terminal, ``quiet`` is off and tqdm is installed (the
``progress`` extra); otherwise :class:`~crossloop.callbacks.EpochLogger`, whose
one line per epoch reads well in CI logs and files.

The bar never makes the training step wait: the running loss and accuracy live
on the device, and the bar reads them (one host sync) at most once every
``refresh_seconds``, not once per batch.
"""

from __future__ import annotations

import math
import sys
import time
from importlib.util import find_spec
from typing import IO, Any

from .base import Callback
from .logger import EpochLogger

# tqdm's layout without its batches/s: the postfix shows samples/s instead.
_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
_COUNTER = "{desc}: {n_fmt} batches [{elapsed}{postfix}]"  # batches per epoch unknown


def progress_callback(*, quiet: bool = False, total: int | None = None, epochs: int | None = None,
                      stream: IO[str] | None = None) -> Callback:
    """The progress display for a run: a :class:`ProgressBar` on a terminal, else an
    :class:`~crossloop.callbacks.EpochLogger` (also with ``quiet`` or without tqdm).

    ``total`` is the number of batches per epoch and ``epochs`` the run's length,
    both only shown by the bar; ``stream`` is where the bar draws (stderr).
    """
    stream = stream if stream is not None else sys.stderr
    if quiet or not _isatty(stream) or find_spec("tqdm") is None:
        return EpochLogger()
    return ProgressBar(total, epochs=epochs, stream=stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar(Callback):
    """One tqdm bar per epoch with the running loss, accuracy and samples/s.

    The bar advances and reads the device metrics only every ``refresh_seconds``;
    between refreshes a batch costs one clock read. At the end of the epoch the
    bar shows the epoch's training results and stays on screen, followed by a
    line with the test results (one line would not fit an 80-column terminal).
    """

    def __init__(self, total: int | None = None, *, epochs: int | None = None,
                 stream: IO[str] | None = None, refresh_seconds: float = 0.5):
        self.total, self.epochs, self.stream = total, epochs, stream
        self.refresh_seconds = refresh_seconds
        self._bar: Any = None
        self._pending = 0          # batches done but not yet shown
        self._started = self._shown = 0.0
        self._counted = 0          # samples on the device metrics when the bar started

    def on_epoch_start(self, trainer: Any) -> None:
        from tqdm import tqdm  # the optional "progress" extra: imported only when a bar is drawn

        self._bar = tqdm(total=self.total, initial=trainer.batch, leave=True, dynamic_ncols=True,
                         desc=self._epoch(trainer.epoch + 1), file=self._stream(),
                         bar_format=_BAR if self.total else _COUNTER)
        self._pending = 0
        self._started = self._shown = time.perf_counter()
        # samples already counted on the device: none, unless resuming mid-epoch
        self._counted = (trainer.backend.metric_results(trainer.train_metrics)["count"]
                         if trainer.batch else 0)

    def on_batch_end(self, trainer: Any) -> None:
        self._pending += 1
        now = time.perf_counter()
        if now - self._shown >= self.refresh_seconds:
            results = trainer.backend.metric_results(trainer.train_metrics)
            rate = (results["count"] - self._counted) / (now - self._started)
            self._show(results["loss"], results["accuracy"], rate)
            self._shown = now

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        if self._bar is None:
            return
        self._show(logs["loss"], logs["accuracy"], logs["samples_per_second"])
        self._close()
        if "test_loss" in logs:
            score = (f"R^2 {logs['test_r2']:.4f}" if "test_r2" in logs
                     else f"acc {logs['test_accuracy']:.4f}")
            print(f"{self._epoch(logs['epoch'])} test: loss {logs['test_loss']:.4f} {score}",
                  file=self._stream(), flush=True)

    def on_fit_end(self, trainer: Any) -> None:
        self._close()  # a run stopped mid-epoch leaves no bar half drawn

    on_interrupt = on_fit_end

    def _epoch(self, number: int) -> str:
        return f"epoch {number}" + (f"/{self.epochs}" if self.epochs else "")

    def _stream(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _show(self, loss: float, accuracy: float, rate: float) -> None:
        """Advance the bar by the batches done since the last refresh and set its postfix."""
        acc = "" if math.isnan(accuracy) else f" acc {accuracy:.4f}"  # float targets: none
        self._bar.set_postfix_str(f"loss {loss:.4f}{acc} {rate:,.0f} samples/s", refresh=False)
        self._bar.update(self._pending)
        self._pending = 0

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
