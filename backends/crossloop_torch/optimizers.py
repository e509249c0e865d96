"""crossloop optimizer specs as ``torch.optim`` optimizers.

crossloop's formulas are torch's, so this maps each spec onto the stock class.
The learning rate is written before every step from crossloop's schedule, and
clipping by global norm runs before ``step()`` (``clip_grad_norm_`` is exactly
crossloop's rule).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from crossloop import optim
from crossloop.backend import NativeOptimizer

# The stock class for each spec; a spec's fields (but lr and clip_norm) are its
# constructor's arguments.
_CLASSES = {optim.SGD: torch.optim.SGD, optim.Adam: torch.optim.Adam,
            optim.AdamW: torch.optim.AdamW, optim.RMSprop: torch.optim.RMSprop,
            optim.Adagrad: torch.optim.Adagrad, optim.Adadelta: torch.optim.Adadelta}


def build(spec: optim.Optimizer, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The stock ``torch.optim`` optimizer computing ``spec``'s formula."""
    if type(spec) not in _CLASSES:
        raise TypeError(f"the torch backend has no optimizer for {spec!r}")
    options = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)
               if f.name not in ("lr", "clip_norm")}
    return _CLASSES[type(spec)](params, lr=spec.lr(0), **options)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write the scheduled learning rate into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def get_state(optimizer: NativeOptimizer,
              table: list[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Slot tensors by ``"<param>.<slot>"`` (zeros for slots not yet created: torch
    creates them, zero, at the first step; Adagrad's ``sum`` exists from the start)."""
    state = {}
    for name, param in table:
        held = optimizer.native.state.get(param, {})
        for slot in optim.slots(optimizer.spec):
            state[f"{name}.{slot}"] = held.get(slot, torch.zeros_like(param))
    return state


def set_state(optimizer: NativeOptimizer, table: list[tuple[str, torch.Tensor]],
              state: dict[str, np.ndarray], step: int) -> None:
    """Load slot values and the step count, as ``optimizer.step()`` would have left them.

    Each value is copied: training updates the slots in place, and the arrays
    loaded (a state dict loaded into several trainers, say) must not change."""
    slots = optim.slots(optimizer.spec)
    for name, param in table:
        held = {slot: torch.from_numpy(state[f"{name}.{slot}"]).to(param, copy=True)
                for slot in slots}
        if not isinstance(optimizer.spec, optim.SGD):  # the others keep a float step each
            held["step"] = torch.tensor(float(step))
        optimizer.native.state[param] = held


def clip_by_global_norm(params: list[torch.Tensor], max_norm: float | None) -> None:
    """Scale the parameters' ``.grad`` by min(1, max_norm / (global norm + 1e-6))."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
