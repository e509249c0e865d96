"""Neutral loss specs. Both reduce by the mean over the batch, on every backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def check_targets(loss: Loss, output_shape: tuple[int, ...], target_shape: tuple[int, ...],
                  target_dtype: np.dtype) -> None:
    """Raise ValueError naming the mismatch unless a model whose samples come out as
    ``output_shape`` can be trained with ``loss`` against targets of ``target_shape``.

    Cross-entropy needs integer ids, one per output row (``(C,)`` logits: a class id;
    ``(T, C)``: ``T`` token ids); MSE needs float targets of the output's shape --
    a broadcast would silently compare every output with every target.
    """
    if isinstance(loss, CrossEntropy):
        if np.dtype(target_dtype).kind not in "iu" or tuple(target_shape) != tuple(output_shape[:-1]):
            raise ValueError(
                f"cross_entropy needs integer targets of shape {tuple(output_shape[:-1])} for a "
                f"model with outputs {tuple(output_shape)}; the data gives {np.dtype(target_dtype)} "
                f"targets of shape {tuple(target_shape)} (for float targets use loss mse)")
    elif isinstance(loss, MSE) and (np.dtype(target_dtype).kind != "f"
                                    or tuple(target_shape) != tuple(output_shape)):
        raise ValueError(
            f"mse needs float targets of the model's output shape {tuple(output_shape)}; the data "
            f"gives {np.dtype(target_dtype)} targets of shape {tuple(target_shape)} (reshape the "
            "targets, e.g. (N,) to (N, 1), or change the model's outputs)")
