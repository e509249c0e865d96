"""crossloop: one training experiment, run on PyTorch or TensorFlow by flipping a flag.

The core imports no framework; a backend is imported only when chosen with
:func:`get_backend` (or a ``Trainer(backend=...)``).

The public names below are loaded on first use (PEP 562), so ``import crossloop``
(and so ``crossloop --help``) takes about a millisecond and loads not even NumPy;
``from crossloop import Trainer`` loads what ``Trainer`` needs.
"""

from __future__ import annotations

import importlib  # (not typing: it alone costs more than the rest of this file)

__version__ = "0.1.0"

# public name -> the submodule that defines it ("" for the submodules themselves)
_EXPORTS = {
    "callbacks": "", "data": "", "losses": "", "metrics": "", "nn": "", "optim": "",
    "parity": "", "testing": "",
    "Backend": "backend", "BackendError": "backend", "BackendNotInstalledError": "registry",
    "BaseBackend": "backend", "NativeOptimizer": "backend",
    "available_backends": "registry", "get_backend": "registry",
    "Callback": "callbacks", "EarlyStopping": "callbacks", "EpochLogger": "callbacks",
    "NonFiniteError": "callbacks", "NonFiniteGuard": "callbacks",
    "Interrupted": "trainer", "Trainer": "trainer", "fit": "trainer",
    "load_params": "weights", "save_params": "weights",
    "PairingError": "transfer", "transfer_weights": "transfer", "compare_models": "compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crossloop' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name] or name}")
    value = getattr(module, name) if _EXPORTS[name] else module
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
