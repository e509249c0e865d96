"""Trace a torch model's layer calls (forward hooks) for weight transfer and model
comparison (see ``crossloop.tracing``); mirrors crossloop_tensorflow/tracing.py.

torch's names and layout are canonical, so each record's conversion only
renames ``<module path>.<role>`` to ``<role>``. BatchNorm's
``num_batches_tracked`` counter has no Keras twin and is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from crossloop.tracing import Arrays, LayerRecord

_KINDS: dict[type, str] = {
    nn.Conv2d: "conv2d", nn.Linear: "linear", nn.BatchNorm1d: "batchnorm",
    nn.BatchNorm2d: "batchnorm", nn.LayerNorm: "layernorm", nn.Embedding: "embedding",
    nn.MultiheadAttention: "attention", nn.ReLU: "relu", nn.GELU: "gelu", nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid", nn.SiLU: "silu", nn.Softmax: "softmax", nn.Flatten: "flatten",
    nn.ZeroPad2d: "pad", nn.MaxPool2d: "maxpool", nn.AvgPool2d: "avgpool", nn.Dropout: "dropout",
}
_SKIPPED = ("num_batches_tracked",)


def kind_of(module: nn.Module) -> str:
    """The module's kind in crossloop's words (``crossloop.tracing``), found through its
    class's bases so a subclass keeps its parent's kind; ``other:<class>`` when unknown."""
    for cls in type(module).__mro__:
        if cls in _KINDS:
            return _KINDS[cls]
    return f"other:{type(module).__name__}"


def config_of(module: nn.Module, kind: str) -> dict[str, Any]:
    """The settings that change what a layer computes, in torch's terms."""
    if kind == "conv2d":
        p = module.padding
        pads = (p[0], p[0], p[1], p[1]) if isinstance(p, tuple) else p   # top, bottom, left, right
        return {"stride": module.stride[0], "padding": pads,
                "native": f"stride {module.stride[0]}, padding {module.padding}"}
    if kind == "batchnorm":
        return {"momentum": module.momentum, "eps": module.eps,
                "native": f"torch momentum {module.momentum} / eps {module.eps}"}
    if kind == "layernorm":
        return {"eps": module.eps, "native": f"torch eps {module.eps}"}
    if kind == "gelu":
        return {"approximate": module.approximate,
                "native": f"torch nn.GELU(approximate={module.approximate!r})"}
    if kind == "attention":
        return {"heads": module.num_heads, "native": f"torch num_heads {module.num_heads}"}
    return {}


def leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules crossloop traces: known kinds (not their insides) and childless modules."""
    out, inside = [], set()
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in inside) or module is model:
            continue
        known = not kind_of(module).startswith("other:")
        if known or not any(True for _ in module.children()):
            out.append((name, module))
        if known:
            inside.add(name + ".")
    return out


def trace_layers(model: nn.Module, x: torch.Tensor, training: bool) -> list[LayerRecord]:
    """One forward pass (without gradients) recording each leaf call in execution order."""
    records: list[LayerRecord] = []
    calls: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            kind = kind_of(module)
            first = calls[name] == 1   # a module called again owns its tensors once
            roles = tuple(role for role, _ in (*module.named_parameters(), *module.named_buffers())
                          if role not in _SKIPPED) if first else ()
            params, to_canonical, to_native = _renamer(f"{name}." if name else "", roles)
            out = output[0] if isinstance(output, tuple) else output
            records.append(LayerRecord(
                name if first else f"{name} (call {calls[name]})", kind, config_of(module, kind),
                params, to_canonical, to_native,
                _numpy(inputs[0]) if inputs and torch.is_tensor(inputs[0]) else None, _numpy(out)))
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in leaves(model)]
    was_training = model.training
    try:
        model.train(training)
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return records


def _renamer(prefix: str, roles: tuple[str, ...]) -> tuple[tuple[str, ...], Callable, Callable]:
    """``(params, to_canonical, to_native)`` for a layer whose native tensors are
    ``<prefix><role>`` in canonical layout already: every torch layer."""
    names = tuple(prefix + role for role in roles)

    def to_canonical(tensors: Mapping[str, np.ndarray]) -> Arrays:
        return {role: tensors[prefix + role] for role in roles}

    def to_native(arrays: Mapping[str, np.ndarray]) -> Arrays:
        return {prefix + role: arrays[role] for role in roles}

    return names, to_canonical, to_native


def _numpy(tensor: torch.Tensor):
    return tensor.detach().cpu().numpy().copy() if torch.is_tensor(tensor) else None
