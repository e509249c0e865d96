"""Running loss and accuracy sums kept on the torch device (see crossloop.metrics)."""

from __future__ import annotations

import torch

from crossloop import metrics


class Metrics:
    """Device-side accumulators: nothing here waits on the host until ``results``."""

    def __init__(self, device: torch.device, grad_norm: bool = False):
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.labels = 0  # integer targets compared: samples, or tokens of token sequences
        self.count = 0
        self.grad_norm_sum = torch.zeros((), dtype=torch.float64, device=device) if grad_norm else None
        self.steps = 0
        self.abs_error_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.values = 0  # float targets compared (regression)

    @torch.no_grad()
    def add_grad_norm(self, grads: list[torch.Tensor]) -> None:
        """Accumulate the step's global gradient norm (call before clipping)."""
        self.grad_norm_sum += torch.nn.utils.get_total_norm(grads)
        self.steps += 1

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        # No autograd here: loss is detached and argmax has no gradient.
        n = y.shape[0]
        self.loss_sum.add_(loss.detach(), alpha=n)  # n * loss in float64, as the TF backend sums
        if not y.is_floating_point():  # class or token ids, on the logits' last axis
            self.correct += (logits.argmax(-1) == y).sum()
            self.labels += y.numel()
        else:
            self.abs_error_sum += (logits.detach() - y).abs().sum().double()
            self.values += y.numel()
        self.count += n

    def _running(self) -> dict[str, float | None]:
        """Every running sum as a Python number, named as ``crossloop.metrics.results``
        takes them (``grad_norm_sum`` None unless tracked)."""
        return {"loss_sum": self.loss_sum.item(), "correct": self.correct.item(),
                "labels": self.labels, "count": self.count,
                "grad_norm_sum": None if self.grad_norm_sum is None else self.grad_norm_sum.item(),
                "steps": self.steps, "abs_error_sum": self.abs_error_sum.item(), "values": self.values}

    def results(self) -> dict[str, float]:
        return metrics.results(**self._running())

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.abs_error_sum.zero_()
        self.labels = self.count = self.steps = self.values = 0
        if self.grad_norm_sum is not None:
            self.grad_norm_sum.zero_()

    def sums(self) -> dict[str, float]:
        """The raw running sums, exactly (for checkpoints: ``crossloop.metrics.checkpoint_sums``)."""
        return metrics.checkpoint_sums(self._running())

    def load_sums(self, sums: dict[str, float]) -> None:
        restored = metrics.restored_sums(sums)  # older checkpoints' missing keys filled in
        self.loss_sum.fill_(restored["loss_sum"])
        self.correct.fill_(restored["correct"])
        self.labels, self.count = restored["labels"], restored["count"]
        self.abs_error_sum.fill_(restored["abs_error_sum"])
        self.values = restored["values"]
        if self.grad_norm_sum is not None and restored["grad_norm_sum"] is not None:
            self.grad_norm_sum.fill_(restored["grad_norm_sum"])
            self.steps = restored["steps"]
