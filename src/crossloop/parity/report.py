"""The parity report: tolerances, the step-by-step record of two backends, and the
first difference over tolerance.

In float64 on CPU the two backends agree to ~1e-14: any larger difference is a
logic difference (a formula, a layout, a default), not rounding. In float32,
rounding noise of ~1e-7 per op is expected, and rare near-ties (a ReLU input
or two max-pool candidates within an ulp) may route a gradient differently;
the float32 tolerances check the loss and the same-weights logits.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- tolerances and findings ----------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """Largest differences between the two backends that still count as agreement.

    ``None`` leaves a quantity unchecked (it is still recorded). The loss agrees
    when ``|loss_a - loss_b| <= loss + loss_rel * |loss_a|`` (with None as 0);
    ``grads`` and ``weights`` bound each tensor's max abs difference after every
    step; ``logits`` bounds the forward pass of the same weights on both
    backends (checked on the initial and on the final weights), relative to the
    logits' size as compare_models does: max |a - b| <= logits * max(1, max |a|),
    since float32 rounds a logit of 20 twenty times coarser than one of 1.
    """
    loss: float | None = None
    loss_rel: float | None = None
    grads: float | None = None
    weights: float | None = None
    logits: float | None = None

    @classmethod
    def default(cls, dtype: str) -> Tolerance:
        """crossloop's promise per dtype (see the module docstring)."""
        if dtype not in DEFAULT_TOLERANCES:
            raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DEFAULT_TOLERANCES)}")
        return DEFAULT_TOLERANCES[dtype]


DEFAULT_TOLERANCES = {
    "float64": Tolerance(loss=1e-10, grads=1e-10, weights=1e-10, logits=1e-10),
    "float32": Tolerance(loss_rel=1e-4, logits=1e-5),
}


@dataclass(frozen=True)
class Exceedance:
    """The first difference over its tolerance."""
    step: int
    quantity: str      # "loss", "grads", "weights" or "logits"
    tensor: str        # canonical tensor name, or "loss" / "logits (same weights)"
    value: float
    tolerance: float

    def __str__(self) -> str:
        what = {"grads": f"gradient of {self.tensor!r}", "weights": f"weight {self.tensor!r}",
                "loss": "loss", "logits": "logits (same weights on both)"}[self.quantity]
        return (f"step {self.step}: {what} differs by {self.value:.3g} "
                f"> tolerance {self.tolerance:.3g}")


# -- the report -----------------------------------------------------------------

@dataclass
class StepRecord:
    """What both backends did at one optimizer step (step s runs at lr(s)).

    ``loss``, ``logits`` and the gradients come from the forward/backward pass
    before the update; ``weight_diff`` compares the parameters after it.
    ``grad_norm`` is each backend's global gradient norm before any clipping.
    """
    step: int
    lr: float
    loss: list[float]
    grad_norm: list[float]
    logits_diff: float
    grad_diff: dict[str, float]
    weight_diff: dict[str, float]

    @property
    def loss_diff(self) -> float:
        return abs(self.loss[0] - self.loss[1])


@dataclass
class ParityReport:
    """The step-by-step comparison of two backends: table, JSON and plot."""
    backends: tuple[str, str]
    dtype: str
    tolerance: Tolerance
    config: dict[str, Any]
    steps: list[StepRecord]
    logits_diff: dict[str, float]    # same weights on both: "initial" and "final"
    seconds: float
    lockstep: bool = False  # the second backend restarted from the first's state every step
    logits_scale: dict[str, float] = field(default_factory=dict)  # max |logits|, first backend
    failure: Exceedance | None = field(init=False)

    def __post_init__(self) -> None:
        self.failure = _first_exceedance(self)

    @property
    def passed(self) -> bool:
        return self.failure is None

    def max_diff(self, quantity: str) -> float:
        """Largest difference over all steps: "loss", "loss_rel", "grads",
        "weights", "logits" (same weights) or "grad_norm"."""
        values = (list(self.logits_diff.values()) if quantity == "logits"
                  else [v for r in self.steps for v in _diffs(r, quantity)])
        return max(values, default=0.0, key=lambda v: math.inf if math.isnan(v) else v)

    def summary(self) -> str:
        """One line: PASS or FAIL with the first step and tensor over tolerance."""
        a, b = self.backends
        mode = " in lockstep" if self.lockstep else ""
        head = (f"{a} vs {b}, {self.dtype}, {len(self.steps)} steps{mode}: max |dloss| "
                f"{self.max_diff('loss'):.3g} (rel {self.max_diff('loss_rel'):.3g}), "
                f"max |dgrad| {self.max_diff('grads'):.3g}, max |dweight| "
                f"{self.max_diff('weights'):.3g}, same-weights logits {self.max_diff('logits'):.3g}")
        return f"PASS  {head}" if self.passed else f"FAIL  {self.failure}\n      {head}"

    def table(self, max_rows: int = 30) -> str:
        """The per-step table; long runs show evenly spaced steps, always
        including the first failing step and the last."""
        a, b = self.backends
        header = (f"{'step':>5} {'lr':>10} {'loss[' + a + ']':>14} {'|dloss|':>9} "
                  f"{'gnorm[' + a + ']':>13} {'|dgnorm|':>9} {'max |dgrad|':>25} "
                  f"{'max |dweight|':>25}")
        lines = [header, "-" * len(header)]
        for r in _pick_rows(self, max_rows):
            lines.append(f"{r.step:>5} {r.lr:>10.4g} {r.loss[0]:>14.8g} {r.loss_diff:>9.2e} "
                         f"{r.grad_norm[0]:>13.6g} {abs(r.grad_norm[0] - r.grad_norm[1]):>9.2e} "
                         f"{_worst(r.grad_diff):>25} {_worst(r.weight_diff):>25}"
                         + ("  <- first over tolerance"
                            if self.failure and self.failure.step == r.step else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"backends": list(self.backends), "dtype": self.dtype, "lockstep": self.lockstep,
                "passed": self.passed,
                "failure": dataclasses.asdict(self.failure) if self.failure else None,
                "failure_message": str(self.failure) if self.failure else None,
                "tolerance": dataclasses.asdict(self.tolerance), "config": self.config,
                "seconds": self.seconds, "logits_diff": self.logits_diff,
                "logits_scale": self.logits_scale,
                "max": {q: self.max_diff(q) for q in ("loss", "loss_rel", "grads", "weights",
                                                       "logits", "grad_norm")},
                "steps": [{**dataclasses.asdict(r), "loss_diff": r.loss_diff} for r in self.steps]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=True)

    def save(self, directory: str | Path, *, plot: bool = True) -> list[Path]:
        """Write ``report.json`` (and ``parity.png``) into ``directory``; return the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "report.json"]
        paths[0].write_text(self.to_json())
        if plot:
            paths.append(self.plot(directory / "parity.png"))
        return paths

    def plot(self, path: str | Path) -> Path:
        """A PNG of the differences per step on a log scale (see :mod:`crossloop.parity.plot`)."""
        from .plot import plot_report

        return plot_report(self, path)


def _diffs(r: StepRecord, quantity: str) -> list[float]:
    if quantity == "loss":
        return [r.loss_diff]
    if quantity == "loss_rel":
        return [r.loss_diff / abs(r.loss[0]) if r.loss[0] else r.loss_diff]
    if quantity in ("grads", "weights"):
        return list(_tensor_diffs(r, quantity).values())
    if quantity == "grad_norm":
        return [abs(r.grad_norm[0] - r.grad_norm[1])]
    raise ValueError(f"unknown quantity {quantity!r}; use loss, loss_rel, grads, weights, "
                     "logits or grad_norm")


def _tensor_diffs(r: StepRecord, quantity: str) -> dict[str, float]:
    return r.grad_diff if quantity == "grads" else r.weight_diff


def _over(value: float, tol: float | None) -> bool:
    """True when ``value`` exceeds ``tol``; NaN always does."""
    return tol is not None and not value <= tol


def _first_exceedance(report: ParityReport) -> Exceedance | None:
    """Scan in the order things happen: same-weights logits, then per step the loss,
    the gradients and the weights (tensors in model order), then the final logits."""
    tol = report.tolerance
    if found := _logits_over(report, "initial", 0):
        return found
    for r in report.steps:
        if tol.loss is not None or tol.loss_rel is not None:
            allowed = (tol.loss or 0.0) + (tol.loss_rel or 0.0) * abs(r.loss[0])
            if _over(r.loss_diff, allowed):
                return Exceedance(r.step, "loss", "loss", r.loss_diff, allowed)
        for quantity in ("grads", "weights"):
            for name, value in _tensor_diffs(r, quantity).items():
                if _over(value, getattr(tol, quantity)):
                    return Exceedance(r.step, quantity, name, value, getattr(tol, quantity))
    return _logits_over(report, "final", report.steps[-1].step if report.steps else 0)


def _logits_over(report: ParityReport, which: str, step: int) -> Exceedance | None:
    """The same-weights logits (``which``: "initial" or "final") over their tolerance,
    scaled by max(1, max |logits|)."""
    if report.tolerance.logits is None:
        return None
    allowed = report.tolerance.logits * max(1.0, report.logits_scale.get(which, 1.0))
    value = report.logits_diff.get(which, 0.0)
    return (Exceedance(step, "logits", "logits (same weights)", value, allowed)
            if _over(value, allowed) else None)


def _worst(diffs: Mapping[str, float]) -> str:
    name = max(diffs, key=lambda n: math.inf if math.isnan(diffs[n]) else diffs[n])
    return f"{diffs[name]:.2e} ({name})"


def _pick_rows(report: ParityReport, max_rows: int) -> list[StepRecord]:
    n = len(report.steps)
    if n <= max_rows:
        return report.steps
    keep = {int(round(i * (n - 1) / (max_rows - 1))) for i in range(max_rows - 1)} | {n - 1}
    if report.failure is not None:
        keep |= {i for i, r in enumerate(report.steps) if r.step == report.failure.step}
    return [report.steps[i] for i in sorted(keep)]
