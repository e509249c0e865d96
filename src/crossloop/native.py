"""Native models in crossloop's loop: a ``torch.nn.Module`` or a ``keras.Model``
trained by :class:`crossloop.Trainer` in place of a neutral spec.

The core never imports a framework, so a native object's framework is read
from the modules its class comes from (:func:`framework_of`). What the Trainer
keeps about a native run is framework-free: :class:`NativeSpec` (the model's
class and its tensors' names and shapes, in the state and checkpoints where a
spec would be), :class:`NativeOptimizerSpec` (a ``torch.optim`` or Keras
optimizer instance, standing where an optimizer spec would) and
:class:`NativeLoss` (a loss callable of the model's framework).

Names and layouts stay native: a torch model's state-dict names, a Keras
model's variable paths. A checkpoint of a native run resumes exactly on the
same backend; moving weights to the other framework goes through
:func:`crossloop.transfer.transfer_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import BackendError
from .errors import InputError

# the first component of a class's module -> the backend that trains it
_FRAMEWORK_MODULES = {"torch": "torch", "keras": "tensorflow", "tf_keras": "tensorflow",
                      "tensorflow": "tensorflow"}


class NativeModelError(InputError, TypeError):
    """A model is not a native model of the framework it is used with, or not in the
    dtype asked for."""


def framework_of(obj: Any) -> str | None:
    """The backend name for a native torch or Keras object (a model, an optimizer),
    from the modules of its class and base classes; None for anything else."""
    for cls in type(obj).__mro__:
        backend = _FRAMEWORK_MODULES.get(cls.__module__.split(".")[0])
        if backend is not None:
            return backend
    return None


def is_native(obj: Any) -> bool:
    """Whether ``obj`` is a torch or Keras object rather than a crossloop spec."""
    return framework_of(obj) is not None


def check_framework(obj: Any, what: str, backend: str) -> None:
    """Raise :class:`BackendError` unless native ``obj`` belongs to ``backend``'s framework."""
    framework = framework_of(obj)
    if framework != backend:
        owner = {"torch": "a torch", "tensorflow": "a Keras"}.get(framework or "", "not a native")
        raise BackendError(f"the {what} is {owner} object ({type(obj).__module__}."
                           f"{type(obj).__qualname__}), but the backend is {backend!r}: a native "
                           "model trains on its own framework's backend (leave backend out to "
                           "follow the model, or move the weights with transfer_weights)")


@dataclass(frozen=True)
class NativeSpec:
    """What a run keeps about a native model, where a spec would be: its class and
    the names and shapes of its parameters and buffers (native names and layout)."""
    name: str
    framework: str
    shapes: Mapping[str, tuple[int, ...]] = field(repr=False)

    @classmethod
    def of(cls, model: Any, params: Mapping[str, np.ndarray], framework: str) -> NativeSpec:
        kind = type(model)
        return cls(f"{kind.__module__}.{kind.__qualname__}", framework,
                   {name: tuple(value.shape) for name, value in params.items()})

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.shapes)

    def describe(self) -> dict[str, Any]:
        """JSON-able: the model class, its framework and each tensor's name and shape."""
        return {"name": self.name, "native": self.framework,
                "layers": [[name, list(shape)] for name, shape in self.shapes.items()]}


@dataclass(frozen=True, eq=False)
class NativeOptimizerSpec:
    """A framework's optimizer instance used as is: its own formula, its own
    learning rate (constant to crossloop: no schedule, no clipping)."""
    native: Any
    initial_lr: float
    clip_norm = None   # crossloop clips nothing: the framework's optimizer does what it does

    @property
    def type_name(self) -> str:
        kind = type(self.native)
        return f"{kind.__module__}.{kind.__qualname__}"

    def lr(self, step: int) -> float:
        """The optimizer's learning rate when training started (crossloop never changes it)."""
        return self.initial_lr

    def describe(self) -> dict[str, Any]:
        return {"type": self.type_name, "native": True, "lr": self.initial_lr}


@dataclass(frozen=True, eq=False)
class NativeLoss:
    """A loss callable of the model's framework, called the framework's way:
    torch ``fn(logits, targets)`` (as ``torch.nn.CrossEntropyLoss()``), Keras
    ``fn(targets, logits)`` (as ``keras.losses.SparseCategoricalCrossentropy``).
    It must return the batch mean, as crossloop's losses do."""
    fn: Callable[..., Any]


def dtype_of(params: Mapping[str, np.ndarray]) -> str:
    """The floating dtype of a native model's parameters (the run's dtype)."""
    floats = {str(v.dtype) for v in params.values() if v.dtype.kind == "f"}
    if len(floats) != 1:
        raise ValueError(f"a native model needs parameters of one floating dtype, found "
                         f"{', '.join(sorted(floats)) or 'none'}")
    return floats.pop()


def adopt_model(backend: Any, model: Any, dtype: str | None,
                params: Mapping[str, np.ndarray] | None) -> tuple[Any, NativeSpec, str]:
    """``(model on the backend's device, its NativeSpec, its dtype)``; ``params``
    (native names) are loaded into it when given. ``dtype`` must be the model's own
    or None: crossloop never casts a user's model behind their back."""
    check_framework(model, "model", backend.name)
    model = backend.adopt_model(model)
    current = backend.get_params(model)
    own = dtype_of(current)
    if dtype is not None and dtype != own:
        raise ValueError(f"dtype={dtype!r} was asked for, but the model's parameters are {own}: "
                         "cast the model itself (torch: model.double(); Keras: build it with "
                         "dtype='float64') or leave dtype out")
    if params is not None:
        model = backend.set_params(model, params)
    return model, NativeSpec.of(model, current, backend.name), own


def optimizer_spec(backend: Any, optimizer: Any) -> Any:
    """``optimizer`` itself if it is a crossloop spec, else a :class:`NativeOptimizerSpec`
    around the framework's optimizer instance (checked to match the backend)."""
    if not is_native(optimizer):
        return optimizer
    check_framework(optimizer, "optimizer", backend.name)
    groups = getattr(optimizer, "param_groups", None)   # torch; else Keras
    lr = groups[0]["lr"] if groups else np.asarray(optimizer.learning_rate)
    return NativeOptimizerSpec(optimizer, float(lr))
