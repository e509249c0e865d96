"""Has a monitored value improved? The one rule behind early stopping and best checkpoints."""

from __future__ import annotations

import math

from ..errors import InputError

MODES = ("min", "max")


class MonitorError(InputError, KeyError):
    """A callback monitors a metric the epoch logs do not have (a typo, or no test data)."""

    def __str__(self) -> str:  # the message, not KeyError's quoted repr of it
        return str(self.args[0])


def monitored(logs: dict[str, float], monitor: str, owner: str) -> float:
    """``logs[monitor]``, or MonitorError naming the key and the keys the logs have, so a
    misspelt ``monitor`` fails at the first epoch's end instead of never improving."""
    if monitor not in logs:
        raise MonitorError(f"{owner} monitors {monitor!r}, but the epoch logs have only "
                           f"{', '.join(logs)}; fix the name, or pass test data to fit() "
                           "for the test_ metrics")
    return logs[monitor]


def mode_for(metric: str) -> str:
    """``"max"`` for accuracies, ``"min"`` for losses and everything else."""
    return "max" if metric.endswith("accuracy") else "min"


class Best:
    """The best value seen so far of a metric that should go ``mode`` ("min" or "max").

    A value improves on the best when it is better by more than ``min_delta``;
    a NaN or infinite value never does.
    """

    def __init__(self, mode: str = "min", min_delta: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not (math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta}")
        self.mode, self.min_delta = mode, min_delta
        self.value: float | None = None

    def improves(self, value: float) -> bool:
        """Whether ``value`` is better than the best so far (always, for the first finite one)."""
        if not math.isfinite(value):
            return False
        if self.value is None:
            return True
        gain = self.value - value if self.mode == "min" else value - self.value
        return gain > self.min_delta

    def update(self, value: float) -> bool:
        """Take ``value`` as the best if it improves; return whether it did."""
        if not self.improves(value):
            return False
        self.value = float(value)
        return True
