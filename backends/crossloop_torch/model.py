"""Build a torch ``nn.Sequential`` from a crossloop spec; map its parameters to the
canonical layout (which is torch's own, so the mapping is the identity)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn as tnn

from crossloop import nn


def build(spec: nn.Sequential, dtype: str) -> tnn.Sequential:
    """The native model; parameter names match the canonical ``"<index>.weight"``."""
    modules = []
    for layer in spec.layers:
        if isinstance(layer, nn.Conv2d):
            modules.append(tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                      stride=layer.stride, padding=layer.padding))
        elif isinstance(layer, nn.Linear):
            modules.append(tnn.Linear(layer.in_features, layer.out_features))
        elif isinstance(layer, nn.ReLU):
            modules.append(tnn.ReLU())
        elif isinstance(layer, nn.MaxPool2d):
            modules.append(tnn.MaxPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, nn.AvgPool2d):
            modules.append(tnn.AvgPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, nn.Flatten):
            modules.append(tnn.Flatten())
        elif isinstance(layer, nn.Dropout):
            modules.append(tnn.Dropout(layer.p))
        else:
            raise TypeError(f"the torch backend cannot build {layer!r}")
    model = tnn.Sequential(*modules).to(getattr(torch, dtype))
    model.crossloop_spec = spec
    return model


def param_table(model: tnn.Module) -> list[tuple[str, torch.Tensor]]:
    """(canonical name, native tensor) for every parameter and buffer, in order."""
    return list(model.state_dict(keep_vars=True).items())


def to_canonical(name: str, model: tnn.Module, value: np.ndarray) -> np.ndarray:
    """Native layout -> canonical layout (identity: torch's layout is canonical)."""
    return value


def to_native(name: str, model: tnn.Module, value: np.ndarray) -> np.ndarray:
    """Canonical layout -> native layout (identity: torch's layout is canonical)."""
    return value
