"""Stop training when a monitored epoch metric stops improving."""

from __future__ import annotations

import math
import sys
from typing import Any

from ..state import check_number
from .base import Callback
from .monitor import Best, monitored


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "test_loss", patience: int = 3, mode: str = "min",
                 min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor, self.patience = monitor, patience
        self.best = Best(mode, min_delta)
        self.wait = 0

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        if self.best.update(monitored(logs, self.monitor, "EarlyStopping")):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            best = "no finite value" if self.best.value is None else f"{self.best.value:.4f}"
            reason = (f"early stopping: {self.monitor} has not improved on {best} "
                      f"for {self.patience} epochs")
            print(reason, file=sys.stderr)
            trainer.stop(reason)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best.value, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.value = check_number("EarlyStopping best", state.get("best"), low=-math.inf,
                                       optional=True)
        self.wait = check_number("EarlyStopping wait", state.get("wait"), whole=True)
