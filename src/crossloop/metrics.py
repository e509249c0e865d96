"""The metric contract shared by every backend.

Each backend keeps these running sums on its device and updates them inside
the (compiled) step, so training never waits on the host; ``metric_results``
reads them once per epoch or logging interval:

- ``loss``: mean of the per-batch loss weighted by batch size,
- ``accuracy``: fraction of samples whose arg-max logit equals the label
  (only for class-label targets),
- ``count``: samples seen since the last reset,
- ``grad_norm`` (only when asked for, ``backend.metrics(grad_norm=True)``): the
  mean global gradient norm per step, before clipping.
"""

from __future__ import annotations


def results(loss_sum: float, correct: float, count: int, grad_norm_sum: float | None = None,
            steps: int = 0) -> dict[str, float]:
    """Turn the running sums into the reported metrics (NaN before any sample)."""
    nan = float("nan")
    out = ({"loss": nan, "accuracy": nan, "count": 0} if count == 0 else
           {"loss": loss_sum / count, "accuracy": correct / count, "count": int(count)})
    if grad_norm_sum is not None:
        out["grad_norm"] = grad_norm_sum / steps if steps else nan
    return out
