"""crossloop's PyTorch backend (registered as ``torch`` in ``crossloop.backends``)."""

from .backend import TorchBackend

__all__ = ["TorchBackend"]
