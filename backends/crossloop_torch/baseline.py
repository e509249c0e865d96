"""The hand-written PyTorch loop that crossloop's torch step is measured against.

Written the way the PyTorch tutorial writes it (``loss = F.cross_entropy(model(x), y);
loss.backward(); opt.step(); opt.zero_grad()``) with the stock ``torch.optim.Adam``.
Like the TensorFlow custom-loop guide's step (crossloop_tensorflow/baseline.py), it
also keeps the epoch's loss and accuracy on the device and reads them once at the
end, so both hand-written loops do the same work as a crossloop step. The model is
built by the torch backend from the same spec and initial parameters, so every
contender in the benchmark trains the identical network.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from crossloop import nn

from .backend import TorchBackend


class HandWrittenLoop:
    """A model, ``torch.optim.Adam`` and the tutorial's loop; ``compile=True`` wraps
    the model in ``torch.compile`` as the ``torch.compile`` tutorial does."""

    def __init__(self, spec: nn.Sequential, params: Mapping[str, np.ndarray], lr: float, *,
                 compile: bool = False):
        model = TorchBackend(device="cpu").build_model(spec, params)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.model = torch.compile(model) if compile else model

    def train_epoch(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """One pass over NumPy ``(x, y)`` batches; returns the epoch's mean loss and accuracy."""
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
        return {"loss": loss_sum.item() / count, "accuracy": correct.item() / count}
