"""One plain line per epoch: the progress display for logs, files and CI."""

from __future__ import annotations

import math
import sys
from typing import IO, Any

from .base import Callback


def format_epoch(logs: dict[str, float]) -> str:
    """One line for an epoch's logs: what every crossloop progress display prints."""
    parts = [f"epoch {logs['epoch']}"]
    for key in ("loss", "accuracy", "test_loss", "test_accuracy", "test_r2", "test_mae",
                "test_perplexity"):
        if key in logs and not (key.endswith("accuracy") and math.isnan(logs[key])):
            parts.append(f"{key} {logs[key]:.4f}")  # (float targets have no accuracy)
    parts.append(f"{logs['samples_per_second']:.0f} samples/s")
    parts.append(f"{logs['seconds']:.1f}s")
    return " | ".join(parts)


class EpochLogger(Callback):
    """Print one line per epoch to ``stream`` (stdout by default)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        print(f"[{trainer.backend.name}] {format_epoch(logs)}", file=self.stream or sys.stdout,
              flush=True)
