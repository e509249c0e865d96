"""Neutral loss specs. Each is torch's formula, reduced by the mean over every
element (every sample, or every token of token sequences), on every backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy from logits against integer class ids, classes on the last
    axis: (N, C) logits with (N,) ids, or sequence logits (N, T, C) with (N, T) ids
    (torch's ``F.cross_entropy`` wants (N, C, T); crossloop's layout is (N, T, C)).
    ``label_smoothing`` e is torch's: the target is (1 - e) * one-hot + e / C."""
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {self.label_smoothing}")


@dataclass(frozen=True)
class MSE:
    """Mean squared error over all elements (torch ``F.mse_loss``)."""


@dataclass(frozen=True)
class L1:
    """Mean absolute error over all elements (torch ``F.l1_loss``)."""


@dataclass(frozen=True)
class SmoothL1:
    """torch's ``F.smooth_l1_loss``: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta
    (Keras's Huber with delta is beta times this; they agree only at 1)."""
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"SmoothL1 beta must be >= 0, got {self.beta}")


@dataclass(frozen=True)
class BCEWithLogits:
    """Binary cross-entropy from logits against float targets in [0, 1], over all
    elements (torch ``F.binary_cross_entropy_with_logits``)."""


Loss = CrossEntropy | MSE | L1 | SmoothL1 | BCEWithLogits
LOSSES = {"cross_entropy": CrossEntropy, "mse": MSE, "l1": L1, "smooth_l1": SmoothL1,
          "bce_with_logits": BCEWithLogits}


def get(loss: str | Loss) -> Loss:
    """A loss spec from a name or a spec."""
    if isinstance(loss, tuple(LOSSES.values())):
        return loss
    try:
        return LOSSES[loss]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}") from None


def check_targets(loss: Loss, output_shape: tuple[int, ...], target_shape: tuple[int, ...],
                  target_dtype: np.dtype, target_range: tuple[int, int] | None = None) -> None:
    """Raise ValueError naming the mismatch unless a model whose samples come out as
    ``output_shape`` can be trained with ``loss`` against targets of ``target_shape``.

    Cross-entropy needs integer ids, one per output row (``(C,)`` logits: a class id;
    ``(T, C)``: ``T`` token ids), each in ``[0, C)`` where ``target_range`` (the ids'
    min and max) is known -- else torch and TensorFlow fail mid-step; the other losses
    need float targets of the output's shape -- a broadcast would silently compare
    every output with every target.
    """
    if isinstance(loss, CrossEntropy):
        if np.dtype(target_dtype).kind not in "iu" or tuple(target_shape) != tuple(output_shape[:-1]):
            raise ValueError(
                f"cross_entropy needs integer targets of shape {tuple(output_shape[:-1])} for a "
                f"model with outputs {tuple(output_shape)}; the data gives {np.dtype(target_dtype)} "
                f"targets of shape {tuple(target_shape)} (for float targets use loss mse)")
        classes = output_shape[-1]
        if target_range is not None and (target_range[0] < 0 or target_range[1] >= classes):
            bad = target_range[0] if target_range[0] < 0 else target_range[1]
            raise ValueError(f"targets must be class ids in [0, {classes}) for a model with "
                             f"{classes} outputs; got {bad} (relabel the targets, or give the "
                             "model as many outputs as there are classes)")
    elif np.dtype(target_dtype).kind != "f" or tuple(target_shape) != tuple(output_shape):
        name = next(k for k, v in LOSSES.items() if isinstance(loss, v))
        raise ValueError(
            f"{name} needs float targets of the model's output shape {tuple(output_shape)}; the "
            f"data gives {np.dtype(target_dtype)} targets of shape {tuple(target_shape)} (reshape "
            "the targets, e.g. (N,) to (N, 1), or change the model's outputs)")
