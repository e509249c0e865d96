"""Build a torch module tree from a crossloop spec; map its tensors to the canonical
layout (which is torch's own, so the mapping is the identity).

Containers become ``nn.Sequential`` (children named as in the spec) and
``layers.Residual``; every leaf is torch's stock module, except where
crossloop's spec has no stock twin (see layers.py).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn as tnn

from crossloop import nn

from .layers import Embedding, GlobalAvgPool2d, PositionalEmbedding, Residual, SelfAttention

_SIMPLE = {nn.ReLU: tnn.ReLU, nn.Tanh: tnn.Tanh, nn.Sigmoid: tnn.Sigmoid, nn.SiLU: tnn.SiLU,
           nn.Flatten: tnn.Flatten, nn.GlobalAvgPool2d: GlobalAvgPool2d}


def _module(layer: object) -> tnn.Module:
    if isinstance(layer, nn.Sequential):
        return tnn.Sequential(OrderedDict((n, _module(c)) for n, c in layer.children()))
    if isinstance(layer, nn.Residual):
        body = OrderedDict((n, _module(c)) for n, c in layer.body.children())
        return Residual(body, *(None if c is None else _module(c)
                                for c in (layer.shortcut, layer.activation)))
    if type(layer) in _SIMPLE:
        return _SIMPLE[type(layer)]()
    if isinstance(layer, nn.Conv2d):
        return tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          stride=layer.stride, padding=layer.padding, bias=layer.bias)
    if isinstance(layer, nn.Linear):
        return tnn.Linear(layer.in_features, layer.out_features, bias=layer.bias)
    if isinstance(layer, nn.MaxPool2d):
        return tnn.MaxPool2d(layer.kernel_size, layer.stride)
    if isinstance(layer, nn.AvgPool2d):
        return tnn.AvgPool2d(layer.kernel_size, layer.stride)
    if isinstance(layer, nn.Dropout):
        return tnn.Dropout(layer.p)
    if isinstance(layer, nn.GELU):
        return tnn.GELU(layer.approximate)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        cls = tnn.BatchNorm1d if isinstance(layer, nn.BatchNorm1d) else tnn.BatchNorm2d
        return cls(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, nn.LayerNorm):
        return tnn.LayerNorm(layer.normalized_shape, eps=layer.eps)
    if isinstance(layer, nn.Embedding):
        return Embedding(layer.num_embeddings, layer.embedding_dim)
    if isinstance(layer, nn.PositionalEmbedding):
        return PositionalEmbedding(layer)
    if isinstance(layer, nn.SelfAttention):
        return SelfAttention(layer)
    raise TypeError(f"the torch backend cannot build {layer!r}")


def build(spec: nn.Sequential, dtype: str) -> tnn.Sequential:
    """The native model; its ``state_dict`` names are the canonical names."""
    model = _module(spec).to(getattr(torch, dtype))
    model.crossloop_spec = spec
    return model


def param_table(model: tnn.Module) -> list[tuple[str, torch.Tensor]]:
    """(canonical name, native tensor) for every model tensor -- parameters and state
    buffers -- in order. For a spec's model: the spec's tensors (BatchNorm's integer
    ``num_batches_tracked`` counter is torch bookkeeping, not crossloop state)."""
    tensors = model.state_dict(keep_vars=True)
    spec = getattr(model, "crossloop_spec", None)
    if spec is None:
        return list(tensors.items())
    return [(name, tensors[name]) for name in spec.param_shapes()]


def to_canonical(name: str, model: tnn.Module, value: np.ndarray) -> np.ndarray:
    """Native layout -> canonical layout (identity: torch's layout is canonical)."""
    return value


def to_native(name: str, model: tnn.Module, value: np.ndarray) -> np.ndarray:
    """Canonical layout -> native layout (identity: torch's layout is canonical)."""
    return value
