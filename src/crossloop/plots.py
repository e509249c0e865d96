"""Training curves as PNG files.

A run directory (written by ``crossloop train``) holds ``history.json``, one
entry per epoch, and ``config.json``, the settings including the backend.
:func:`plot_runs` draws loss and accuracy per epoch, train solid and test
dashed, for one or more runs on one figure; ``crossloop compare RUN_A RUN_B``
puts two runs (say torch and tensorflow) side by side.

matplotlib (the ``plot`` extra) is imported only when a plot is drawn, and
through its object API with the Agg canvas: no pyplot, no global backend switch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

HISTORY, CONFIG = "history.json", "config.json"
PANELS = (("loss", "loss"), ("accuracy", "accuracy"))
MARKERS = "osD^v<>p*h"


class RunNotFoundError(InputError, FileNotFoundError):
    """A folder given as a run does not hold a run's readable history.json."""


def read_run(run_dir: str | os.PathLike[str]) -> tuple[str, list[dict[str, float]]]:
    """A run's label (folder name and backend) and its per-epoch history."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise RunNotFoundError(f"{folder} is not a folder: give the out_dir of a 'crossloop "
                               "train' run")
    try:
        history = json.loads((folder / HISTORY).read_text())
    except FileNotFoundError:
        raise RunNotFoundError(f"{folder} has no {HISTORY}: not a crossloop run, or one stopped "
                               "before its first epoch ended (give the out_dir of a 'crossloop "
                               "train' run)") from None
    except (ValueError, OSError) as exc:
        raise RunNotFoundError(f"{folder / HISTORY} cannot be read ({exc}); 'crossloop train "
                               f"--resume {folder}' rewrites it from the checkpoint") from None
    if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
        raise RunNotFoundError(f"{folder / HISTORY} is not a list of epochs; 'crossloop train "
                               f"--resume {folder}' rewrites it from the checkpoint")
    try:
        backend = json.loads((folder / CONFIG).read_text()).get("backend")
    except (OSError, ValueError, AttributeError):  # the label only loses its backend
        backend = None
    name = folder.resolve().name
    return (f"{name} ({backend})" if backend and backend not in name else name), history


def plot_runs(runs: Sequence[tuple[str, list[dict[str, float]]]], path: str | os.PathLike[str],
              *, title: str | None = None) -> Any:
    """Draw each ``(label, history)`` run's loss and accuracy per epoch into a PNG at ``path``.

    Train curves are solid, test curves dashed with hollow markers; each run has its own colour
    and marker, so runs that agree (two backends) still show as two. Returns the
    matplotlib Figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PANELS))
    for (key, name), ax in zip(PANELS, axes):
        for i, (label, history) in enumerate(runs):
            style = {"color": f"C{i}", "marker": MARKERS[i % len(MARKERS)], "markersize": 5}
            epochs = [h["epoch"] for h in history]
            for split, prefix, line, face in (("train", "", "-", f"C{i}"),
                                              ("test", "test_", "--", "white")):
                values = [h.get(prefix + key, float("nan")) for h in history]
                ax.plot(epochs, values, linestyle=line, markerfacecolor=face,
                        label=f"{label} {split}", **style)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return fig
