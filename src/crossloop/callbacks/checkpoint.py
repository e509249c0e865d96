"""Save the run's checkpoints: ``last`` as it goes, ``best`` by a monitored metric."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..state import check_number
from .base import Callback
from .monitor import Best, monitored


class CheckpointCallback(Callback):
    """Save ``last.safetensors`` every epoch (and every ``every_steps`` steps) and on
    interruption, and ``best.safetensors`` when ``monitor`` improves. A ``monitor`` the
    epoch logs lack fails at the first epoch's end (a typo would never save a best);
    left out, it is ``test_accuracy`` where there is test data, else no best is kept.

    Each file is the trainer's ``state_dict()``, written by :mod:`crossloop.checkpoint`.
    Parameters that are no longer finite are never saved, so the last good
    checkpoint stays. With ``write=False`` (the data-parallel ranks but rank 0)
    it takes the state at the same points but writes nothing: taking it adds the
    ranks' metric sums, which every rank must join.
    """

    def __init__(self, directory: str | os.PathLike[str], *, every_steps: int | None = None,
                 monitor: str | None = None, mode: str = "max", write: bool = True):
        self.directory = Path(directory)
        self.every_steps, self.monitor, self.write = every_steps, monitor, write
        self.best = Best(mode)

    @property
    def last(self) -> Path:
        return self.directory / "last.safetensors"

    def on_batch_end(self, trainer: Any) -> None:
        if self.every_steps and trainer.step % self.every_steps == 0:
            self._save(self.last, trainer.state_dict())

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        value = (logs.get("test_accuracy") if self.monitor is None
                 else monitored(logs, self.monitor, "CheckpointCallback"))
        state = None
        if value is not None and self.best.update(value):
            state = trainer.state_dict()
            self._save(self.directory / "best.safetensors", state)
        self._save(self.last, state or trainer.state_dict())

    def on_interrupt(self, trainer: Any) -> None:
        self._save(self.last, trainer.state_dict())

    def _save(self, path: Path, state: dict[str, Any]) -> None:
        if self.write:
            checkpoint.save(path, state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.value = check_number("CheckpointCallback best", state.get("best"),
                                       low=-math.inf, optional=True)
