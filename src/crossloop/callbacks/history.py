"""Keep a run's ``history.json`` current, one entry per epoch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..files import write_json
from .base import Callback


class HistoryFile(Callback):
    """Rewrite ``path`` (atomically) with the trainer's history after every epoch."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        write_json(self.path, trainer.history)
