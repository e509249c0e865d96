"""A data set: its train and test splits, and how its samples become model inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .sources import DataError
from .transforms import Transform

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set's train and test splits as arrays (sample axis first), as stored.

    ``transforms`` are the data set's own per-batch preprocessing (MNIST's
    normalisation, say), which :meth:`Batches.from_dataset
    <crossloop.data.Batches.from_dataset>` applies by default. ``num_classes``
    is the number of classes (or the vocabulary size of a text corpus), None
    for regression; ``classes`` names them (class names, or the symbol of each
    token id). Arrays may be read-only memory maps: nothing here copies them.
    """

    name: str
    train_inputs: np.ndarray = field(repr=False)
    train_targets: np.ndarray = field(repr=False)
    test_inputs: np.ndarray = field(repr=False)
    test_targets: np.ndarray = field(repr=False)
    source: str = ""
    transforms: tuple[Transform, ...] = ()
    num_classes: int | None = None
    classes: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def num_outputs(self) -> int:
        """What a model for this data outputs per sample: one logit per class (or token),
        or one value per regression target."""
        if self.num_classes is not None:
            return self.num_classes
        return int(np.prod(self.train_targets.shape[1:], dtype=np.int64))

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={len(self.train_targets)}, "
                f"test={len(self.test_targets)}, source={self.source!r})")

    @classmethod
    def from_arrays(cls, name: str, train: Sequence[Any], test: Sequence[Any], *,
                    source: str = "", transforms: Sequence[Transform] = ()) -> Dataset:
        """A data set from ``(inputs, targets)`` pairs. Integer targets are class (or
        token) ids, their count ``max + 1``; float targets are regression targets."""
        arrays = []
        for split, pair in (("train", train), ("test", test)):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise DataError(f"{name}: the {split} split must be a pair (inputs, targets), "
                                f"got {_describe(pair)}")
            inputs, targets = (a if isinstance(a, np.ndarray) else np.asarray(a) for a in pair)
            if inputs.ndim == 0 or len(inputs) != len(targets):
                raise DataError(f"{name}: {split} inputs {inputs.shape} and targets "
                                f"{targets.shape} must have the same number of samples")
            arrays += [inputs, targets]
        kinds = ["float" if a.dtype.kind == "f" else "int" if a.dtype.kind in "iu" else None
                 for a in arrays[1::2]]
        if None in kinds or kinds[0] != kinds[1]:
            raise DataError(f"{name}: targets must be integer class ids or float regression "
                            f"targets in both splits, got {arrays[1].dtype} and {arrays[3].dtype}")
        num_classes = (None if kinds[0] == "float"
                       else int(max(a.max(initial=0) for a in arrays[1::2])) + 1)
        return cls(name, *arrays, source=source, transforms=tuple(transforms),
                   num_classes=num_classes)


def _describe(value: Any) -> str:
    """A short description of a value for an error message: its type, and shape or length."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__
