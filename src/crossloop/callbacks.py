"""Callbacks: code that runs on the loop's named events.

Subclass :class:`Callback` and override the events you need; each receives the
:class:`~crossloop.loop.Trainer` (its backend, model, optimizer, step, epoch).
"""

from __future__ import annotations

import math
import sys
from typing import IO, Any


class Callback:
    """No-op hooks for every loop event."""

    def on_fit_start(self, trainer: Any) -> None: ...
    def on_epoch_start(self, trainer: Any) -> None: ...
    def on_batch_end(self, trainer: Any) -> None: ...
    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None: ...
    def on_interrupt(self, trainer: Any) -> None: ...
    def on_fit_end(self, trainer: Any) -> None: ...


def format_epoch(logs: dict[str, float]) -> str:
    """One line for an epoch's logs: what every crossloop progress display prints."""
    parts = [f"epoch {logs['epoch']}"]
    for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
        if key in logs:
            parts.append(f"{key} {logs[key]:.4f}")
    parts.append(f"{logs['samples_per_second']:.0f} samples/s")
    parts.append(f"{logs['seconds']:.1f}s")
    return " | ".join(parts)


class EpochLogger(Callback):
    """Print one line per epoch: the plain progress display for logs and CI."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        print(f"[{trainer.backend.name}] {format_epoch(logs)}", file=self.stream or sys.stdout,
              flush=True)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "test_loss", patience: int = 3, mode: str = "min",
                 min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, but the epoch logs have "
                           f"only {', '.join(logs)}; pass test data to fit() or monitor 'loss'")
        value = logs[self.monitor]
        sign = 1 if self.mode == "min" else -1
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            print(f"early stopping: {self.monitor} has not improved on {self.best:.4f} "
                  f"for {self.patience} epochs", file=sys.stderr)
            trainer.stop_training = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]


class NonFiniteError(FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteGuard(Callback):
    """Stop training at the first step whose loss is NaN or infinite.

    It reads the device's running loss every ``check_every`` steps (1 on CPU,
    where the read is nearly free; 100 on a GPU, where each read waits for the
    device), sets ``trainer.stop_training`` and records the error in
    ``trainer.error`` with the step. Checkpoints never save non-finite weights,
    so the last good one stays.
    """

    def __init__(self, check_every: int | None = None):
        self.check_every = check_every
        self.checked_step = 0

    def on_batch_end(self, trainer: Any) -> None:
        every = self.check_every or (1 if trainer.backend.device == "cpu" else 100)
        if trainer.step % every == 0:
            self._check(trainer)

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        if not math.isfinite(logs["loss"]):
            self._fail(trainer, logs["loss"])

    def _check(self, trainer: Any) -> None:
        loss = trainer.backend.metric_results(trainer.train_metrics)["loss"]
        if math.isfinite(loss):
            self.checked_step = trainer.step
        else:
            self._fail(trainer, loss)

    def _fail(self, trainer: Any, loss: float) -> None:
        where = (f"at step {trainer.step}" if trainer.step - self.checked_step <= 1
                 else f"between steps {self.checked_step + 1} and {trainer.step}")
        trainer.error = NonFiniteError(
            f"training loss became {loss} {where} (epoch {trainer.epoch + 1}, batch {trainer.batch}); "
            "stopped. Lower the learning rate or clip gradients (clip_norm); the last "
            "checkpoint saved before this point holds the last finite weights")
        print(f"crossloop: {trainer.error}", file=sys.stderr)
        trainer.stop_training = True
