"""The parity plot: differences per step on a log scale, one line per tensor.

matplotlib (the ``plot`` extra) is imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .report import ParityReport, _tensor_diffs


def plot_report(report: ParityReport, path: str | Path) -> Path:
    """Draw ``report`` into a PNG at ``path``: weights, then gradients (one line per
    tensor), then the loss; tolerances dashed, the first failure marked."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the parity plot needs matplotlib: pip install crossloop[plot]") from None
    floor = float(np.finfo(report.dtype).eps) * 1e-3   # where exact zeros are drawn
    fig = Figure(figsize=(11, 9), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    _plot_tensors(axes[0], report, "weights", floor)
    _plot_tensors(axes[1], report, "grads", floor)
    _plot_loss(axes[2], report, floor)
    for ax in axes:
        if report.failure is not None:
            ax.axvline(report.failure.step, color="r", lw=0.8, alpha=0.6)
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    axes[-1].set_xlabel(f"optimizer step (exact zeros drawn at {floor:.0e})")
    verdict = "PASS" if report.passed else f"FAIL at {report.failure}"
    fig.suptitle(f"{report.config.get('model', {}).get('name', 'model')} · "
                 f"{report.config.get('optimizer', {}).get('type', '')} · {report.dtype}"
                 f"{' in lockstep' if report.lockstep else ''} · "
                 f"{report.backends[0]} vs {report.backends[1]} — {verdict}", fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _plot_tensors(ax: Any, report: ParityReport, quantity: str, floor: float) -> None:
    """One line per tensor: a colour per layer, solid weights, dotted biases."""
    steps = [r.step for r in report.steps]
    names = list(_tensor_diffs(report.steps[0], quantity)) if report.steps else []
    layers = list(dict.fromkeys(name.partition(".")[0] for name in names))
    for name in names:
        layer, _, kind = name.partition(".")
        ax.plot(steps, [max(_tensor_diffs(r, quantity)[name], floor) for r in report.steps],
                color=f"C{layers.index(layer) % 10}", ls="-" if kind == "weight" else ":",
                label=name)
    tol = getattr(report.tolerance, quantity)
    if tol is not None:
        ax.axhline(tol, color="r", ls="--", lw=1, label=f"tolerance {tol:g}")
    what = "weights after the step" if quantity == "weights" else "gradients"
    ax.set_title(f"{what}: max |diff| per tensor", loc="left", fontsize=10)


def _plot_loss(ax: Any, report: ParityReport, floor: float) -> None:
    """The loss difference, its tolerance, and the logits difference for reference."""
    steps, tol = [r.step for r in report.steps], report.tolerance
    ax.plot(steps, [max(r.loss_diff, floor) for r in report.steps], color="k", marker=".",
            lw=0.6, label="|loss diff|")
    ax.plot(steps, [max(r.logits_diff, floor) for r in report.steps], color="0.6",
            label="max |logits diff| (each on its own weights)")
    if tol.loss is not None or tol.loss_rel is not None:
        ax.plot(steps, [(tol.loss or 0.0) + (tol.loss_rel or 0.0) * abs(r.loss[0])
                        for r in report.steps], "r--", lw=1, label="tolerance")
    ax.set_title("loss: |diff|", loc="left", fontsize=10)
