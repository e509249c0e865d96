"""Running loss and accuracy sums kept on the torch device (see crossloop.metrics)."""

from __future__ import annotations

import torch

from crossloop import metrics


class Metrics:
    """Device-side accumulators: nothing here waits on the host until ``results``."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = 0

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        # No autograd here: loss is detached and argmax has no gradient.
        n = y.shape[0]
        self.loss_sum.add_(loss.detach(), alpha=n)  # n * loss in float64, as the TF backend sums
        if y.ndim == 1:
            self.correct += (logits.argmax(1) == y).sum()
        self.count += n

    def results(self) -> dict[str, float]:
        return metrics.results(self.loss_sum.item(), self.correct.item(), self.count)

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.count = 0

    def sums(self) -> dict[str, float]:
        """The raw running sums, exactly (for checkpoints)."""
        return {"loss_sum": self.loss_sum.item(), "correct": self.correct.item(), "count": self.count}

    def load_sums(self, sums: dict[str, float]) -> None:
        self.loss_sum.fill_(sums["loss_sum"])
        self.correct.fill_(int(sums["correct"]))
        self.count = int(sums["count"])
