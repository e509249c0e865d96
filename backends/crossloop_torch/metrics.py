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

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.loss_sum += loss.detach() * n
        if y.ndim == 1:
            self.correct += (logits.argmax(1) == y).sum()
        self.count += n

    def results(self) -> dict[str, float]:
        return metrics.results(self.loss_sum.item(), self.correct.item(), self.count)

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.count = 0
