"""The metric contract shared by every backend.

Each backend keeps these running sums on its device and updates them inside
the (compiled) step, so training never waits on the host; ``metric_results``
reads them once per epoch or logging interval:

- ``loss``: mean of the per-batch loss weighted by batch size,
- ``accuracy``: fraction of integer targets (class ids, or every token of a
  token sequence) equal to the arg-max of their logits; NaN for float targets,
- ``count``: samples seen since the last reset,
- ``mae`` (float targets, regression): mean absolute error over every target value,
- ``perplexity`` (token-sequence targets, language models): exp of the mean loss,
  the per-token cross-entropy,
- ``grad_norm`` (only when asked for, ``backend.metrics(grad_norm=True)``): the
  mean global gradient norm per step, before clipping.

``r2`` turns a mean squared error into the coefficient of determination on the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

TASK_METRICS = ("mae", "perplexity")  # reported where the targets make them meaningful


def results(loss_sum: float, correct: float, labels: int, count: int,
            grad_norm_sum: float | None = None, steps: int = 0, abs_error_sum: float = 0.0,
            values: int = 0) -> dict[str, float]:
    """Turn the running sums into the reported metrics (NaN before any sample).

    ``labels`` is how many integer targets ``correct`` was counted over (more than
    ``count`` for token sequences); ``values`` how many float targets
    ``abs_error_sum`` was summed over.
    """
    nan = float("nan")
    out = {"loss": loss_sum / count if count else nan,
           "accuracy": correct / labels if labels else nan, "count": int(count)}
    if values:
        out["mae"] = abs_error_sum / values
    if labels > count:
        out["perplexity"] = math.exp(min(out["loss"], 700.0))  # capped below float overflow
    if grad_norm_sum is not None:
        out["grad_norm"] = grad_norm_sum / steps if steps else nan
    return out


def checkpoint_sums(running: Mapping[str, float | None]) -> dict[str, float]:
    """The sums a checkpoint stores, from every running sum of an accumulator (Python
    numbers named as :func:`results` takes them): the gradient-norm pair only when it
    is tracked, the regression pair only once float targets were seen."""
    sums = {"loss_sum": float(running["loss_sum"]), "correct": int(running["correct"]),
            "labels": int(running["labels"]), "count": int(running["count"])}
    if running["grad_norm_sum"] is not None:
        sums.update(grad_norm_sum=float(running["grad_norm_sum"]), steps=int(running["steps"]))
    if running["values"]:
        sums.update(abs_error_sum=float(running["abs_error_sum"]), values=int(running["values"]))
    return sums


def restored_sums(sums: Mapping[str, float]) -> dict[str, float | None]:
    """Every running sum, named as :func:`results` takes them, from a checkpoint's
    :func:`checkpoint_sums`, with the defaults of what older checkpoints lack or a run
    left out: ``labels`` is ``count`` (class labels only), no float targets, and
    ``grad_norm_sum`` None (``steps`` 0) when the gradient norm was not tracked."""
    count = int(sums["count"])
    return {"loss_sum": float(sums["loss_sum"]), "correct": int(sums["correct"]),
            "labels": int(sums.get("labels", count)), "count": count,
            "grad_norm_sum": sums.get("grad_norm_sum"), "steps": int(sums.get("steps", 0)),
            "abs_error_sum": float(sums.get("abs_error_sum", 0.0)),
            "values": int(sums.get("values", 0))}


def r2(mse: float, target_variance: float) -> float:
    """R^2 = 1 - MSE / Var(targets): 1 is perfect, 0 is predicting the mean."""
    return 1 - mse / target_variance if target_variance > 0 else float("nan")
