"""The record of a model-pair comparison: one row per compared tensor, the verdict,
the first divergence and its likely causes; a table, JSON and a plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# max |torch - keras| / max(1, max |torch|) allowed, per dtype
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}
PHASES = ("start", "forward", "gradient", "loss", "weights")   # the order they are reported in


@dataclass
class Row:
    """One compared tensor. ``phase``: ``start`` (weights after transfer), ``forward``
    (a layer's output; ``input_diff`` its input's), ``gradient``, ``loss`` or
    ``weights`` (after training step ``step``, counted from 0)."""
    phase: str
    torch: str
    keras: str
    tensor: str
    diff: float
    ok: bool
    step: int | None = None
    input_diff: float | None = None
    note: str = ""

    def where(self) -> str:
        at = f"training step {self.step}, " if self.step is not None else ""
        what = {"forward": "output of", "gradient": "gradient of", "start": "weights of",
                "loss": "loss", "weights": "weights of"}[self.phase]
        layer = "" if self.phase == "loss" else f" layer {self.torch} (torch) / {self.keras} (Keras)"
        tensor = f" {self.tensor}" if self.tensor and self.phase != "forward" else ""
        return f"{at}{what}{layer}{tensor}"


def diff(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """max |a - b| / max(1, max |a|); inf when the shapes differ or one is missing."""
    if a is None or b is None or np.shape(a) != np.shape(b):
        return math.inf
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(a)))))


@dataclass
class ModelReport:
    """What :func:`crossloop.compare.compare_models` found."""
    dtype: str
    tolerance: float
    steps: int
    rows: list[Row] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(row.ok for row in self.rows if row.phase != "start")

    @property
    def first_divergence(self) -> Row | None:
        """The first layer whose output differs while its input agreed (forward); else
        the first gradient; else the first training step and tensor over tolerance."""
        for phase in ("forward", "gradient"):
            bad = [r for r in self.rows if r.phase == phase and not r.ok]
            if bad:
                agreed = [r for r in bad if r.input_diff is None or r.input_diff <= self.tolerance]
                return (agreed or bad)[0]
        training = [r for r in self.rows if r.phase in ("loss", "weights") and not r.ok]
        return min(training, key=lambda r: r.step) if training else None

    def max_diff(self, phase: str) -> float:
        values = [r.diff for r in self.rows if r.phase == phase]
        return max(values) if values else 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{p} {self.max_diff(p):.1e}" for p in PHASES
                           if any(r.phase == p for r in self.rows))
        first = self.first_divergence
        verdict = "PASS" if first is None else f"FAIL: first divergence at {first.where()} " \
                                               f"(diff {first.diff:.2e})"
        text = (f"{verdict}. {self.dtype}, tolerance {self.tolerance:g}, {self.steps} training "
                f"steps; max diff per phase: {counts}")
        return text + "".join(f"\n  likely cause: {c}" for c in self.causes)

    def table(self, max_rows: int = 40, rest: str = "") -> str:
        """The rows, at most ``max_rows``; ``rest`` says where the others are (the
        command line: the report.json it writes), by default how to get them. A cell
        with nothing to say holds ``-``, so every column reads alike."""
        rows = [r for r in self.rows if r.phase not in ("start", "weights") or not r.ok
                 or r.step == self.steps - 1]   # weights: the last step, and failures
        first = self.first_divergence
        lines = [f"{'phase':<9}{'step':>5}  {'torch':<22}{'keras':<24}{'tensor':<16}{'diff':>10}  "]
        for r in rows[:max_rows]:
            mark = " <- first" if r is first else (" !" if not r.ok else "")
            step, t, k = ("-" if v in (None, "") else v for v in (r.step, r.torch, r.keras))
            lines.append(f"{r.phase:<9}{step:>5}  {t[:21]:<22}{k[:23]:<24}{r.tensor[:15]:<16}"
                         f"{r.diff:>10.2e}{mark}")
        if len(rows) > max_rows:
            lines.append(f"... {len(rows) - max_rows} more rows " + (rest or (
                "not shown: table(max_rows=...) shows them, save(folder) writes them all to "
                "report.json")))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {"passed": self.passed, "dtype": self.dtype, "tolerance": self.tolerance,
                "steps": self.steps, "first_divergence": None if first is None else
                {"where": first.where(), **asdict(first)}, "causes": self.causes,
                "seconds": self.seconds, "rows": [asdict(r) for r in self.rows]}

    def save(self, directory: str | Path, *, plot: bool = True) -> list[Path]:
        """Write ``report.json`` (and ``models.png``) into ``directory``; return the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "report.json"]
        paths[0].write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True))
        if plot:
            paths.append(plot_report(self, directory / "models.png"))
        return paths


def plot_report(report: ModelReport, path: str | Path) -> Path:
    """Per-layer differences of the forward pass and the gradients, and of the
    weights per training step, on a log scale; tolerance dashed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the comparison plot needs matplotlib: pip install crossloop[plot]") from None
    floor = float(np.finfo(report.dtype).eps) * 1e-3
    fig = Figure(figsize=(11, 7), layout="constrained")
    layers_ax, steps_ax = fig.subplots(2, 1)
    names = [r.torch for r in report.rows if r.phase == "forward"]
    layers_ax.plot(range(len(names)), [max(r.diff, floor) for r in report.rows
                                       if r.phase == "forward"], "o", label="output")
    grads: dict[str, float] = {}   # the largest gradient difference of each layer
    for r in report.rows:
        if r.phase == "gradient" and r.torch in names:
            grads[r.torch] = max(grads.get(r.torch, 0.0), r.diff)
    layers_ax.plot([names.index(n) for n in grads], [max(v, floor) for v in grads.values()], "s",
                   label="gradient (largest of the layer's)")
    layers_ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    for key in dict.fromkeys((r.torch, r.tensor) for r in report.rows if r.phase == "weights"):
        rows = [r for r in report.rows if r.phase == "weights" and (r.torch, r.tensor) == key]
        steps_ax.plot([r.step for r in rows], [max(r.diff, floor) for r in rows], lw=0.8)
    steps_ax.set_xlabel("training step (one line per tensor: weights and running statistics)")
    for ax in (layers_ax, steps_ax):
        ax.axhline(report.tolerance, color="k", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    layers_ax.legend(fontsize=8)
    first = report.first_divergence
    fig.suptitle("PASS" if first is None else f"FAIL at {first.where()}", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
