"""crossloop: one training experiment, run on PyTorch or TensorFlow by flipping a flag.

The core imports no framework; a backend is imported only when chosen with
:func:`get_backend` (or a ``Trainer(backend=...)``).
"""

from . import callbacks, data, losses, metrics, nn, optim
from .backend import (Backend, BackendError, BackendNotInstalledError, available_backends,
                      get_backend)
from .callbacks import Callback, EarlyStopping, EpochLogger, NonFiniteError, NonFiniteGuard
from .loop import Interrupted, Trainer, fit

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendError", "BackendNotInstalledError", "Callback", "EarlyStopping",
    "EpochLogger", "Interrupted", "NonFiniteError", "NonFiniteGuard", "Trainer",
    "available_backends", "callbacks", "data", "fit", "get_backend", "losses", "metrics", "nn",
    "optim",
]
