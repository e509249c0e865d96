"""Draw a run's loss and accuracy curves into a PNG when it ends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import Callback


class PlotCurves(Callback):
    """At the end of a run (or when it is interrupted), plot its history into a PNG at
    ``path`` with :func:`crossloop.plots.plot_runs` (needs matplotlib)."""

    def __init__(self, path: str | os.PathLike[str], *, label: str | None = None,
                 title: str | None = None):
        self.path, self.label, self.title = Path(path), label, title

    def on_fit_end(self, trainer: Any) -> None:
        from ..plots import plot_runs

        if trainer.history:
            plot_runs([(self.label or trainer.backend.name, trainer.history)], self.path,
                      title=self.title)

    on_interrupt = on_fit_end  # stopped by a signal: the epochs done so far
