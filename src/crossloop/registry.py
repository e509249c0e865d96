"""The backend registry: which backends exist, which one a run uses, and loading it.

Backends are found through the ``crossloop.backends`` entry-point group, so a
third-party package registers one exactly as crossloop's own torch and
tensorflow backends do, and are imported only when chosen: ``import crossloop``
loads no framework.
"""

from __future__ import annotations

import os
from importlib import metadata
from importlib.util import find_spec
from typing import Any

from .backend import Backend, BackendError

ENTRY_POINT_GROUP = "crossloop.backends"
ENV_VAR = "CROSSLOOP_BACKEND"
DEFAULT_BACKEND = "torch"
DEVICES = ("auto", "cpu", "gpu")

# The framework module each built-in backend needs; its pip extra has the same name.
_FRAMEWORKS = {"torch": "torch", "tensorflow": "tensorflow"}


class BackendNotInstalledError(BackendError, ImportError):
    """The chosen backend's framework is not installed."""


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
    if name is not None and not name.strip():
        raise BackendError(f"the backend name is empty; choose one of "
                           f"{', '.join(available_backends()) or 'none installed'}, or leave it "
                           f"out for ${ENV_VAR} or {DEFAULT_BACKEND!r}")
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
