"""The metric contract shared by every backend.

Each backend keeps these running sums on its device and updates them inside
the (compiled) step, so training never waits on the host; ``metric_results``
reads them once per epoch or logging interval:

- ``loss``: mean of the per-batch loss weighted by batch size,
- ``accuracy``: fraction of samples whose arg-max logit equals the label
  (only for class-label targets),
- ``count``: samples seen since the last reset.
"""

from __future__ import annotations

NAMES = ("loss", "accuracy")


def results(loss_sum: float, correct: float, count: int) -> dict[str, float]:
    """Turn the running sums into the reported metrics (NaN before any sample)."""
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "count": 0}
    return {"loss": loss_sum / count, "accuracy": correct / count, "count": int(count)}
