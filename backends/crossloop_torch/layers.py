"""torch modules for the crossloop specs torch has no stock module for: a residual
block, self-attention over one input, learned positions, global average pooling.

Mirrors crossloop_tensorflow/layers.py.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn as tnn

from crossloop import nn


class Residual(tnn.Module):
    """``activation(body(x) + shortcut(x))``; the body's children are this module's own
    (so they are named ``block.conv1``), the projection is ``block.shortcut``. The body
    is looked up by name at each call, so a child swapped in place (as
    ``SyncBatchNorm.convert_sync_batchnorm`` swaps BatchNorms) is the one that runs."""

    def __init__(self, body: OrderedDict, shortcut: tnn.Module | None,
                 activation: tnn.Module | None):
        super().__init__()
        for name, module in body.items():
            self.add_module(name, module)
        self.body = list(body)  # the children's names, in order
        self.shortcut, self.activation = shortcut, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in self.body:
            out = self._modules[name](out)
        out = out + (x if self.shortcut is None else self.shortcut(x))
        return out if self.activation is None else self.activation(out)


class SelfAttention(tnn.MultiheadAttention):
    """``nn.MultiheadAttention``'s parameters (packed ``in_proj_weight`` (3E, E), rows q,
    k, v; ``out_proj``) and its computation on one (N, T, E) input as query, key and
    value, written as nanoGPT writes it: one projection, ``scaled_dot_product_attention``
    with ``is_causal`` (torch's causal mask) when ``causal``. ``MultiheadAttention.forward``
    itself transposes to (T, N, E) and back and copies the heads twice, which made the
    tiny-gpt forward pass 1.9x the hand-written one on an H200 (2.4 vs 1.3 ms)."""

    def __init__(self, spec: nn.SelfAttention):
        super().__init__(spec.embed_dim, spec.num_heads, batch_first=True)
        self.causal = spec.causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n, t, e = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, t, 3, self.num_heads, e // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (N, H, T, D)
        return self.out_proj(y.transpose(1, 2).reshape(n, t, e))


class PositionalEmbedding(tnn.Module):
    """x + weight[:T] for (N, T, E) inputs: GPT's learned position embedding."""

    def __init__(self, spec: nn.PositionalEmbedding):
        super().__init__()
        self.weight = tnn.Parameter(torch.empty(spec.max_len, spec.embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.shape[1]]


class Embedding(tnn.Embedding):
    """``nn.Embedding`` that takes token ids of any integer dtype (torch wants int64)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.long())


class GlobalAvgPool2d(tnn.Module):
    """(N, C, H, W) -> (N, C): the mean over H and W."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))
