"""TensorBoard scalars from any backend, written without TensorFlow.

The ``tensorboard`` package (the ``tensorboard`` extra) brings the event
protobufs and the record framing, but its ``EventFileWriter`` opens files
through ``tensorboard.compat.tf``, which imports TensorFlow whenever it is
installed. :class:`EventWriter` therefore frames the records with TensorBoard's
own ``RecordWriter`` onto a plain Python file: a torch run stays free of
TensorFlow, and TensorBoard reads the files like any other.

Layout (Keras's, so train and test curves overlay in one chart)::

    <log_dir>/train/events.out.tfevents.*   epoch/<key> at each epoch, step/<key> every N steps
    <log_dir>/test/events.out.tfevents.*    epoch/loss, epoch/accuracy at each epoch
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from numbers import Real
from pathlib import Path
from typing import Any

from .base import Callback

# Tells apart files one process opens in the same second, in order: TensorBoard
# reads a folder's event files sorted by name, so a resumed run's come after.
_unique = itertools.count()
# Metric results that are count-weighted means (see crossloop.metrics).
_AVERAGED = ("loss", "accuracy")


class EventWriter:
    """Scalars appended to one TensorBoard event file in ``log_dir``."""

    def __init__(self, log_dir: str | os.PathLike[str]):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        folder = Path(log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / (f"events.out.tfevents.{int(time.time()):010d}."
                              f"{socket.gethostname()}.{os.getpid()}.{next(_unique):06d}")
        self._records = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 (closed by close())
        self._records.write(self._event(wall_time=time.time(),
                                        file_version="brain.Event:2").SerializeToString())
        self.flush()

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Record ``value`` for ``tag`` at ``step`` (the x axis in TensorBoard)."""
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        self._records.write(self._event(wall_time=time.time(), step=int(step),
                                        summary=summary).SerializeToString())

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The real-valued entries (bools excluded), as floats."""
    return {key: float(value) for key, value in values.items()
            if isinstance(value, Real) and not isinstance(value, bool)}


class TensorBoard(Callback):
    """Write a run's scalars as TensorBoard event files under ``log_dir``.

    At each epoch end, every numeric entry of the epoch's logs (loss, accuracy,
    lr, samples_per_second, seconds, and e.g. grad_norm where the trainer adds
    it) goes to ``train/`` as ``epoch/<key>``, and each ``test_<key>`` to
    ``test/`` as ``epoch/<key>``, with the epoch number as the step.

    Every ``every_steps`` optimizer steps (0: never) it also reads the device
    metrics once and writes ``step/loss`` and ``step/accuracy`` averaged over
    the steps since the last write, ``step/lr``, ``step/samples_per_second``
    and any other numeric metric result as it stands, with the optimizer step
    as the step.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, every_steps: int = 100):
        if every_steps < 0:
            raise ValueError(f"every_steps must be >= 0 (0: only per epoch), got {every_steps}")
        self.log_dir, self.every_steps = Path(log_dir), every_steps
        self._train: EventWriter | None = None
        self._test: EventWriter | None = None
        self._last: dict[str, float] = {}  # running sums, count and time at the last step write

    def on_fit_start(self, trainer: Any) -> None:
        if self._train is None:
            self._train = EventWriter(self.log_dir / "train")
            self._test = EventWriter(self.log_dir / "test")

    def on_epoch_start(self, trainer: Any) -> None:
        # The device metrics hold this epoch's sums so far: none, or when resuming
        # mid-epoch, those of its first part (then read them once, as the baseline).
        sums = (self._read(trainer)[0] if trainer.batch
                else dict.fromkeys((*_AVERAGED, "count"), 0.0))
        self._last = {**sums, "time": time.perf_counter()}

    def on_batch_end(self, trainer: Any) -> None:
        if not self.every_steps or trainer.step % self.every_steps:
            return
        now, others = self._read(trainer)
        now["time"], step = time.perf_counter(), trainer.step
        seen = now["count"] - self._last["count"]
        if seen > 0:
            for key in _AVERAGED:
                self._train.scalar(f"step/{key}", (now[key] - self._last[key]) / seen, step)
            self._train.scalar("step/samples_per_second", seen / (now["time"] - self._last["time"]),
                               step)
        self._train.scalar("step/lr", trainer.lr, step)
        for key, value in others.items():
            self._train.scalar(f"step/{key}", value, step)
        self._last = now

    @staticmethod
    def _read(trainer: Any) -> tuple[dict[str, float], dict[str, float]]:
        """The device metrics (one host sync): the running sums of the averaged
        metrics with the count, and every other numeric result as it is."""
        results = _numbers(trainer.backend.metric_results(trainer.train_metrics))
        sums = {"count": results.pop("count")}
        for key in _AVERAGED:  # running means back to running sums
            sums[key] = results.pop(key) * sums["count"]
        return sums, results

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        values = _numbers(logs)
        epoch = int(values.pop("epoch"))
        for key, value in values.items():
            writer, name = ((self._test, key[len("test_"):]) if key.startswith("test_")
                            else (self._train, key))
            writer.scalar(f"epoch/{name}", value, epoch)
        self._train.flush()
        self._test.flush()

    def on_fit_end(self, trainer: Any) -> None:
        for writer in (self._train, self._test):
            if writer is not None:
                writer.close()
        self._train = self._test = None

    on_interrupt = on_fit_end  # stopped by a signal: close the files, a resumed run opens new ones
