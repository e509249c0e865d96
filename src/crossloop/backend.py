"""The backend protocol (the neutral loop API) and the backend registry.

A backend is one framework's implementation of the loop phases. Backends are
found through the ``crossloop.backends`` entry-point group, so a third-party
package registers one exactly as crossloop's own torch and tensorflow backends
do, and are imported only when chosen: ``import crossloop`` loads no framework.

Model, optimizer and metric objects are opaque and owned by the backend. Phases
that change state return it, so a functional backend (JAX) can return new
state while the torch and TensorFlow backends return the same object.
"""

from __future__ import annotations

import os
from importlib import metadata
from importlib.util import find_spec
from typing import Any, ContextManager, Mapping, Protocol, runtime_checkable

import numpy as np

from . import losses, nn, optim

ENTRY_POINT_GROUP = "crossloop.backends"
ENV_VAR = "CROSSLOOP_BACKEND"
DEFAULT_BACKEND = "torch"
DEVICES = ("auto", "cpu", "gpu")

# The framework module each built-in backend needs; its pip extra has the same name.
_FRAMEWORKS = {"torch": "torch", "tensorflow": "tensorflow"}

Params = dict[str, np.ndarray]


class BackendError(RuntimeError):
    """A backend cannot be chosen or cannot run as asked."""


class BackendNotInstalledError(BackendError, ImportError):
    """The chosen backend's framework is not installed."""


@runtime_checkable
class Backend(Protocol):
    """The neutral loop API every framework implements."""

    name: str
    device: str

    # -- set-up ---------------------------------------------------------------
    def build_model(self, spec: nn.Sequential, params: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> Any: ...
    def get_params(self, model: Any) -> Params: ...
    def set_params(self, model: Any, params: Mapping[str, np.ndarray]) -> Any: ...
    def build_optimizer(self, spec: optim.Optimizer, model: Any) -> Any: ...
    def set_learning_rate(self, optimizer: Any, lr: float) -> Any: ...
    def get_optimizer_state(self, optimizer: Any, model: Any) -> Params: ...
    def set_optimizer_state(self, optimizer: Any, model: Any, state: Mapping[str, np.ndarray],
                            step: int) -> Any: ...
    def to_device(self, array: np.ndarray) -> Any: ...
    def to_numpy(self, tensor: Any) -> np.ndarray: ...
    def seed(self, seed: int) -> None: ...

    # -- the phases -----------------------------------------------------------
    def forward(self, model: Any, x: Any, training: bool = False) -> Any: ...
    def loss(self, spec: losses.Loss, logits: Any, y: Any) -> Any: ...
    def gradients(self, model: Any, loss: losses.Loss, x: Any, y: Any) -> tuple[Any, Any, Any]: ...
    def canonical_gradients(self, model: Any, grads: Any) -> Params: ...
    def apply_gradients(self, optimizer: Any, model: Any, grads: Any) -> tuple[Any, Any]: ...

    # -- metrics (accumulated on the device, read once per interval) ----------
    def metrics(self, grad_norm: bool = False) -> Any: ...
    def update_metrics(self, metrics: Any, loss: Any, logits: Any, y: Any) -> Any: ...
    def metric_results(self, metrics: Any) -> dict[str, float]: ...
    def reset_metrics(self, metrics: Any) -> Any: ...
    def metric_sums(self, metrics: Any) -> dict[str, float]: ...
    def set_metric_sums(self, metrics: Any, sums: Mapping[str, float]) -> Any: ...

    # -- fused steps (compiled where the framework compiles) ------------------
    def train_step(self, model: Any, optimizer: Any, loss: losses.Loss, metrics: Any,
                   x: Any, y: Any) -> tuple[Any, Any, Any]: ...
    def eval_step(self, model: Any, loss: losses.Loss, metrics: Any, x: Any, y: Any) -> Any: ...

    # -- numerics -------------------------------------------------------------
    def no_tf32(self) -> ContextManager[None]: ...


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of the registered backends whose framework is installed."""
    return [name for name in sorted(_entry_points())
            if name not in _FRAMEWORKS or find_spec(_FRAMEWORKS[name]) is not None]


def choose_backend_name(name: str | None = None) -> str:
    """The backend name to use: explicit argument, then $CROSSLOOP_BACKEND, then the default."""
    return (name or os.environ.get(ENV_VAR) or DEFAULT_BACKEND).strip().lower()


def get_backend(name: str | None = None, *, device: str = "auto", **options: Any) -> Backend:
    """Load and configure a backend.

    ``name`` falls back to ``$CROSSLOOP_BACKEND`` and then to ``"torch"``.
    ``device`` is ``"auto"`` (a GPU if the framework sees one), ``"cpu"`` or
    ``"gpu"``; other options (``compile``, ``jit_compile``) go to the backend.
    """
    chosen = choose_backend_name(name)
    if device not in DEVICES:
        raise BackendError(f"device={device!r} is not one of {', '.join(DEVICES)}")
    registered = _entry_points()
    if chosen not in registered:
        known = ", ".join(sorted(registered)) or "none"
        raise BackendError(
            f"unknown backend {chosen!r}; registered backends: {known} "
            f"(installed: {', '.join(available_backends()) or 'none'}). "
            f"Pick one with --backend or ${ENV_VAR}.")
    try:
        cls = registered[chosen].load()
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"backend {chosen!r} needs a framework that is not installed ({exc}); "
            f"install crossloop[{chosen}]") from exc
    return cls(device=device, **options)
