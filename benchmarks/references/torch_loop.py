"""The PyTorch reference: models and a training loop written the ordinary way.

The loop is the PyTorch tutorial's (``loss = F.cross_entropy(model(x), y);
loss.backward(); optimizer.step(); optimizer.zero_grad()``) with the stock
``torch.optim.Adam``. Like crossloop's step it keeps the loss and accuracy sums on
the device and reads them once per window, so both do the same work.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def conv1() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 26 * 26, 10))


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


MODELS = {"mlp": mlp, "conv1": conv1, "lenet5": lenet5}


class HandLoop:
    """One model and ``torch.optim.Adam``, trained by the tutorial's loop."""

    def __init__(self, model: str, lr: float):
        self.model = MODELS[model]()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    def train(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
        """One pass over NumPy ``(x, y)`` batches (NCHW images); returns the mean loss."""
        model, optimizer = self.model, self.optimizer
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.int64)
        count = 0
        for x, y in batches:
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                loss_sum += loss * len(y)
                correct += (logits.argmax(1) == y).sum()
            count += len(y)
        return loss_sum.item() / count
