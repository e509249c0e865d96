"""Stop training at the first step whose loss is NaN or infinite, or at the end of
an epoch whose weights are."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..state import check_number
from .base import Callback


class NonFiniteError(FloatingPointError):
    """The training loss, or a weight, became NaN or infinite."""


class NonFiniteGuard(Callback):
    """Stop training at the first step whose loss is NaN or infinite.

    It reads the device's running loss every ``check_every`` steps (1 on CPU,
    where the read is nearly free; 100 on a GPU, where each read waits for the
    device) and stops the trainer with a :class:`NonFiniteError` naming the
    step, or the range of steps since the last check. At each epoch's end it
    also checks the weights: a loss can stay finite over NaN weights (TensorFlow's
    fused float32 ReLU turns NaN into 0, so a model whose first layer went NaN
    predicts from its biases). Checkpoints never save non-finite weights, so the
    last good one stays.
    """

    def __init__(self, check_every: int | None = None):
        self.check_every = check_every
        self.checked_step = 0   # the last step whose running loss was seen finite

    def on_fit_start(self, trainer: Any) -> None:
        # a run resumed without this guard's state: its position was finite when saved
        self.checked_step = max(self.checked_step, trainer.step)

    def on_batch_end(self, trainer: Any) -> None:
        every = self.check_every or (1 if trainer.backend.device == "cpu" else 100)
        if trainer.step % every == 0:
            self._check(trainer)

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        if not math.isfinite(logs["loss"]):
            self._fail(trainer, logs["loss"])
            return
        bad = next((name for name, value in trainer.params().items()
                    if not np.isfinite(value).all()), None)
        if bad is not None:
            error = NonFiniteError(
                f"weight {bad!r} became NaN or infinite in epoch {logs['epoch']} while the "
                f"loss stayed finite ({logs['loss']:.4g}); stopped. Check the data for NaN, "
                "lower the learning rate or clip gradients (clip_norm)")
            trainer.stop(str(error), error=error)

    def _check(self, trainer: Any) -> None:
        loss = trainer.backend.metric_results(trainer.train_metrics)["loss"]
        if math.isfinite(loss):
            self.checked_step = trainer.step
        else:
            self._fail(trainer, loss)

    def _fail(self, trainer: Any, loss: float) -> None:
        where = (f"at step {trainer.step}" if trainer.step - self.checked_step <= 1
                 else f"between steps {self.checked_step + 1} and {trainer.step}")
        error = NonFiniteError(
            f"training loss became {loss} {where} (epoch {trainer.epoch + 1}, batch "
            f"{trainer.batch}); stopped. Lower the learning rate, clip gradients (clip_norm) or "
            "check the data for NaN")
        trainer.stop(str(error), error=error)

    def state_dict(self) -> dict[str, Any]:
        return {"checked_step": self.checked_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.checked_step = check_number("NonFiniteGuard checked_step", state.get("checked_step"),
                                         whole=True)
