"""The backend protocol (the neutral loop API) and the base class backends share.

A backend is one framework's implementation of the loop phases; the registry
(:mod:`crossloop.registry`) finds and loads one by name.

:class:`Backend` is the contract. :class:`BaseBackend` holds what every
backend written around mutable native objects shares (the canonical-layout
conversions of parameters, gradients and optimizer state, the metric phases,
the fused step composed from the phases), so the torch and TensorFlow backends
keep only what differs; a third-party backend may use it or implement the
protocol from scratch.

Model, optimizer and metric objects are opaque and owned by the backend. Phases
that change state return it, so a functional backend (JAX) can return new
state while the torch and TensorFlow backends return the same object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ContextManager, Protocol, runtime_checkable

import numpy as np

from . import losses, nn, optim
from .errors import InputError
from .tracing import LayerRecord

Params = dict[str, np.ndarray]


class BackendError(InputError, RuntimeError):
    """A backend cannot be chosen or cannot run as asked."""


@runtime_checkable
class Backend(Protocol):
    """The neutral loop API every framework implements.

    ``model``, ``optimizer`` and ``metrics`` are the backend's own opaque objects;
    ``x``, ``y``, ``logits`` and ``grads`` are its device tensors. Parameters,
    gradients and optimizer state cross the boundary as :data:`Params`: NumPy arrays
    by canonical name, in the canonical (torch) layout.
    """

    name: str
    device: str

    # -- set-up ---------------------------------------------------------------
    def build_model(self, spec: nn.Sequential, params: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> Any:
        """The native model of ``spec`` in ``dtype`` on the device, holding ``params``."""
        ...

    def adopt_model(self, model: Any) -> Any:
        """A user's native model, moved to the device and ready for the loop."""
        ...

    def get_params(self, model: Any) -> Params:
        """Every model tensor (parameters and running statistics), canonical."""
        ...

    def set_params(self, model: Any, params: Mapping[str, np.ndarray]) -> Any:
        """Write canonical ``params`` (every name, matching shapes) into the model."""
        ...

    def build_optimizer(self, spec: optim.Optimizer, model: Any) -> Any:
        """The native optimizer of ``spec`` over the model's trainable parameters."""
        ...

    def set_learning_rate(self, optimizer: Any, lr: float) -> Any:
        """Set the learning rate the next update uses (the loop writes the schedule's)."""
        ...

    def get_optimizer_state(self, optimizer: Any, model: Any) -> Params:
        """The optimizer's slots by ``"<param>.<slot>"`` (torch's slot names), canonical."""
        ...

    def set_optimizer_state(self, optimizer: Any, model: Any, state: Mapping[str, np.ndarray],
                            step: int) -> Any:
        """Load slots from :meth:`get_optimizer_state` and the count of updates made."""
        ...

    def to_device(self, array: np.ndarray) -> Any:
        """A batch array (canonical layout) as a device tensor in the backend's layout."""
        ...

    def to_numpy(self, tensor: Any) -> np.ndarray:
        """A device tensor as a NumPy array the caller owns, in the backend's layout."""
        ...

    def seed(self, seed: int) -> None:
        """Seed the framework's own random generators (dropout and the like)."""
        ...

    # -- the phases -----------------------------------------------------------
    def forward(self, model: Any, x: Any, training: bool = False) -> Any:
        """The model's logits for ``x``; ``training`` selects dropout and batch statistics."""
        ...

    def loss(self, spec: losses.Loss, logits: Any, y: Any) -> Any:
        """The loss ``spec`` of ``logits`` against ``y``: a scalar device tensor."""
        ...

    def gradients(self, model: Any, loss: losses.Loss, x: Any, y: Any) -> tuple[Any, Any, Any]:
        """One training forward and backward pass: ``(loss, logits, grads)``, where ``grads``
        holds a native gradient per trainable parameter, unclipped, in the backend's order."""
        ...

    def canonical_gradients(self, model: Any, grads: Any) -> Params:
        """``grads`` from :meth:`gradients` as NumPy arrays by canonical name and layout."""
        ...

    def apply_gradients(self, optimizer: Any, model: Any, grads: Any) -> tuple[Any, Any]:
        """Clip ``grads`` to the spec's ``clip_norm`` (when set) and take one optimizer
        step with them: ``(optimizer, model)``."""
        ...

    # -- native models: layer calls, for transfer_weights and compare_models ---
    def trace_layers(self, model: Any, x: Any, training: bool = False) -> list[LayerRecord]:
        """One forward pass of a native model, a :class:`LayerRecord` per leaf layer call,
        in execution order."""
        ...

    # -- metrics (accumulated on the device, read once per interval) ----------
    def metrics(self, grad_norm: bool = False) -> Any:
        """Fresh metric accumulators; ``grad_norm`` also sums the gradient norm."""
        ...

    def update_metrics(self, metrics: Any, loss: Any, logits: Any, y: Any) -> Any:
        """Add one batch to the accumulators, on the device; returns them."""
        ...

    def metric_results(self, metrics: Any) -> dict[str, float]:
        """The reported values (loss, accuracy, ...) of what was accumulated."""
        ...

    def reset_metrics(self, metrics: Any) -> Any:
        """Zero the accumulators; returns them."""
        ...

    def metric_sums(self, metrics: Any) -> dict[str, float]:
        """The raw running sums, for a checkpoint (a resume continues them)."""
        ...

    def set_metric_sums(self, metrics: Any, sums: Mapping[str, float]) -> Any:
        """Load sums from :meth:`metric_sums`; returns the accumulators."""
        ...

    # -- fused steps (compiled where the framework compiles) ------------------
    def train_step(self, model: Any, optimizer: Any, loss: losses.Loss, metrics: Any,
                   x: Any, y: Any) -> tuple[Any, Any, Any]:
        """gradients, apply_gradients and update_metrics on one batch:
        ``(model, optimizer, metrics)``."""
        ...

    def eval_step(self, model: Any, loss: losses.Loss, metrics: Any, x: Any, y: Any) -> Any:
        """An inference forward pass on one batch, its loss and logits added to ``metrics``;
        returns them."""
        ...

    # -- numerics -------------------------------------------------------------
    def no_tf32(self) -> ContextManager[None]:
        """A context inside which float32 matmuls and convolutions on NVIDIA GPUs run in
        full float32, not TF32 (parity runs use it)."""
        ...


@dataclass
class NativeOptimizer:
    """A backend's optimizer: the framework's optimizer object and the crossloop
    spec it implements (whose ``clip_norm`` the apply phase honours).

    crossloop keeps the spec here rather than as attributes patched onto a
    ``torch.optim`` or Keras object.
    """
    spec: optim.Optimizer
    native: Any

    @property
    def clip_norm(self) -> float | None:
        return self.spec.clip_norm


class BaseBackend:
    """What every crossloop backend built on mutable native objects shares.

    A subclass implements the framework's own parts -- building, the phases,
    tensor transfer -- plus five small hooks that say how its native objects
    map to crossloop's canonical names and layout:

    - ``_param_table(model)``: ``[(canonical name, native tensor)]`` in model order, for
      every model tensor: trainable parameters and non-trainable state (running stats)
    - ``_trainable_names(model)``: canonical names in the order of the gradients
    - ``_to_canonical(name, model, array)`` / ``_to_native(...)``: layout conversion
    - ``_assign(native, array)``: write a NumPy value into a native tensor
    - ``_slots(optimizer, model)`` / ``_load_slots(optimizer, model, arrays, step)``:
      optimizer state by ``"<param>.<slot>"`` (torch's slot names), trainable parameters only

    The metric accumulators have ``update``, ``results``, ``reset``, ``sums``,
    ``load_sums`` and ``add_grad_norm`` methods and a ``grad_norm_sum`` that is
    None unless the gradient norm is tracked.
    """

    name: str
    device: str

    # -- canonical layout -------------------------------------------------------
    def get_params(self, model: Any) -> Params:
        """``_param_table``'s tensors, copied to NumPy and converted to the canonical layout."""
        return {name: self._to_canonical(name, model, self.to_numpy(tensor))
                for name, tensor in self._param_table(model)}

    def set_params(self, model: Any, params: Mapping[str, np.ndarray]) -> Any:
        """Check ``params`` against the model's canonical names and shapes (all or nothing),
        then convert each to the native layout and ``_assign`` it."""
        table = self._param_table(model)
        shapes = {name: self._to_canonical(name, model, np.empty(tuple(t.shape))).shape
                  for name, t in table}
        nn.check_params(shapes, dict(params))
        for name, tensor in table:
            value = self._to_native(name, model, np.asarray(params[name]))
            self._assign(tensor, np.require(value, requirements="C"))
        return model

    def canonical_gradients(self, model: Any, grads: Any) -> Params:
        """``grads`` named by ``_trainable_names`` (the gradients' order), canonical layout."""
        return {name: self._to_canonical(name, model, self.to_numpy(g))
                for name, g in zip(self._trainable_names(model), grads)}

    def get_optimizer_state(self, optimizer: NativeOptimizer, model: Any) -> Params:
        """``_slots``, each converted to the canonical layout of the parameter it belongs to."""
        return {key: self._to_canonical(_owner(key), model, self.to_numpy(value))
                for key, value in self._slots(optimizer, model).items()}

    def set_optimizer_state(self, optimizer: NativeOptimizer, model: Any,
                            state: Mapping[str, np.ndarray], step: int) -> NativeOptimizer:
        """Each slot converted to its parameter's native layout, then ``_load_slots``."""
        native = {key: np.require(self._to_native(_owner(key), model, np.asarray(v)), requirements="C")
                  for key, v in state.items()}
        self._load_slots(optimizer, model, native, step)
        return optimizer

    def _optimized_table(self, model: Any) -> list[tuple[str, Any]]:
        """``_param_table`` without the tensors the optimizer does not update (a native
        model's buffers and non-trainable variables)."""
        trainable = set(self._trainable_names(model))
        return [(name, tensor) for name, tensor in self._param_table(model) if name in trainable]

    # -- metrics ----------------------------------------------------------------
    def update_metrics(self, metrics: Any, loss: Any, logits: Any, y: Any) -> Any:
        """The accumulators' ``update`` (device-side: nothing waits on the host)."""
        metrics.update(loss, logits, y)
        return metrics

    def metric_results(self, metrics: Any) -> dict[str, float]:
        """The accumulators' ``results``: the one read from the device per interval."""
        return metrics.results()

    def reset_metrics(self, metrics: Any) -> Any:
        """The accumulators' ``reset``."""
        metrics.reset()
        return metrics

    def metric_sums(self, metrics: Any) -> dict[str, float]:
        """The accumulators' ``sums``, for a checkpoint."""
        return metrics.sums()

    def set_metric_sums(self, metrics: Any, sums: Mapping[str, float]) -> Any:
        """The accumulators' ``load_sums``, from a checkpoint."""
        metrics.load_sums(dict(sums))
        return metrics

    # -- fused steps: the phases composed (a backend compiles this composition) --
    def train_step(self, model: Any, optimizer: Any, loss: losses.Loss, metrics: Any,
                   x: Any, y: Any) -> tuple[Any, Any, Any]:
        """:meth:`gradients`, the gradient norm when tracked, :meth:`apply_gradients` and
        :meth:`update_metrics`; a backend compiles this composition where it can."""
        value, logits, grads = self.gradients(model, loss, x, y)
        if metrics.grad_norm_sum is not None:
            metrics.add_grad_norm(grads)  # before clipping
        optimizer, model = self.apply_gradients(optimizer, model, grads)
        return model, optimizer, self.update_metrics(metrics, value, logits, y)

    def eval_step(self, model: Any, loss: losses.Loss, metrics: Any, x: Any, y: Any) -> Any:
        """:meth:`forward` (not training), :meth:`loss` and :meth:`update_metrics`."""
        logits = self.forward(model, x, training=False)
        return self.update_metrics(metrics, self.loss(loss, logits, y), logits, y)


def _owner(slot_key: str) -> str:
    """The parameter an optimizer slot belongs to: ``"0.weight.exp_avg"`` -> ``"0.weight"``."""
    return slot_key.rsplit(".", 1)[0]
