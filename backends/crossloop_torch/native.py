"""A user's own ``torch.nn.Module`` and ``torch.optim`` optimizer in crossloop's loop
(see ``crossloop.native``); mirrors crossloop_tensorflow/native.py.

Names are the model's own state-dict names; an optimizer's state travels as
``"<parameter name>.<slot>"`` with each tensor's own dtype (torch keeps Adam's
step as a float32 tensor), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from crossloop.backend import NativeOptimizer
from crossloop.native import NativeOptimizerSpec


def adopt_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model on ``device`` (in place: an optimizer built on it stays valid)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the torch backend trains a torch.nn.Module, got {type(model).__name__}")
    return model.to(device)


def adopt_optimizer(spec: NativeOptimizerSpec, model: torch.nn.Module) -> NativeOptimizer:
    """The user's optimizer, checked to update this model's parameters only."""
    native = spec.native
    if not isinstance(native, torch.optim.Optimizer):
        raise TypeError(f"the torch backend takes a torch.optim.Optimizer, got "
                        f"{type(native).__name__}")
    own = {id(p) for p in model.parameters()}
    if any(id(p) not in own for group in native.param_groups for p in group["params"]):
        raise ValueError("the optimizer updates tensors that are not this model's parameters: "
                         "build it on model.parameters()")
    return NativeOptimizer(spec, native)


def get_state(optimizer: NativeOptimizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state by ``"<parameter name>.<slot>"``."""
    names = {id(p): name for name, p in model.named_parameters()}
    return {f"{names[id(param)]}.{slot}": torch.as_tensor(value)
            for param, held in optimizer.native.state.items() for slot, value in held.items()}


def set_state(optimizer: NativeOptimizer, model: torch.nn.Module,
              state: dict[str, np.ndarray]) -> None:
    """Load per-parameter state as :func:`get_state` gave it, each tensor in its own
    dtype; scalars (the step) stay on the CPU, as torch keeps them."""
    params = dict(model.named_parameters())
    optimizer.native.state.clear()
    for key, value in state.items():
        name, slot = key.rsplit(".", 1)
        tensor = torch.from_numpy(np.array(value))
        optimizer.native.state[params[name]][slot] = (
            tensor if tensor.ndim == 0 else tensor.to(params[name].device))
