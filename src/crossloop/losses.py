"""Neutral loss specs. Both reduce by the mean over the batch, on every backend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy from logits against integer class labels, batch mean
    (torch ``F.cross_entropy``; Keras ``sparse_categorical_crossentropy(from_logits=True)``)."""


@dataclass(frozen=True)
class MSE:
    """Mean squared error over all elements (torch ``F.mse_loss``)."""


Loss = CrossEntropy | MSE
LOSSES = {"cross_entropy": CrossEntropy, "mse": MSE}


def get(loss: str | Loss) -> Loss:
    """A loss spec from a name or a spec."""
    if isinstance(loss, (CrossEntropy, MSE)):
        return loss
    try:
        return LOSSES[loss]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}") from None
