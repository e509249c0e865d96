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


class BasicBlock(nn.Module):
    """He et al.'s basic block: two 3x3 convs with BatchNorm, a projection shortcut
    (1x1 conv + BatchNorm) where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    """The CIFAR ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels) on 1x28x28."""

    def __init__(self, channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for width in (16, 32, 64):
            for i in range(3):
                blocks.append(BasicBlock(cin, width, 2 if i == 0 and width != 16 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


class Block(nn.Module):
    """A pre-LayerNorm transformer block as nanoGPT writes it: fused qkv projection,
    ``F.scaled_dot_product_attention`` with a causal mask, GELU MLP of 4x width."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Token + learned position embeddings, 2 blocks (dim 64, 4 heads), LayerNorm, head."""

    def __init__(self, vocab: int, seq_len: int = 64, dim: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(seq_len, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(layers)])
        self.ln_f, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln_f(self.blocks(self.wte(idx) + self.wpe(pos))))


MODELS = {"mlp": mlp, "conv1": conv1, "lenet5": lenet5, "resnet20": ResNet20, "tiny-gpt": TinyGPT}


class HandLoop:
    """One model and ``torch.optim.Adam``, trained by the tutorial's loop."""

    def __init__(self, model: str, lr: float, device: str = "cpu", **options: int):
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        self.model = MODELS[model](**options).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    def train(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
        """One pass over NumPy ``(x, y)`` batches (NCHW images, or token windows with
        next-token targets); returns the mean loss."""
        model, optimizer = self.model, self.optimizer
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        for x, y in batches:
            x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
            logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, -2), y.flatten())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                loss_sum += loss * len(y)
                correct += (logits.argmax(-1) == y).sum()
            count += len(y)
        return loss_sum.item() / count
