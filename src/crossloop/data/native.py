"""Framework-native data in: a ``torch.utils.data.DataLoader`` or ``Dataset``, a
``tf.data.Dataset``, or any re-iterable of ``(inputs, targets)`` batches, seen as
crossloop batches and converted to NumPy at the boundary, batch by batch.

crossloop's promise of the same batches on every backend holds for its own
pipeline (:class:`~crossloop.data.Batches`) only: a DataLoader or tf.data
pipeline draws its order and augmentation from its own framework's random
state, so two backends -- or a resumed run -- see other batches. A map-style
``Dataset`` handed over with a batch size is the exception: crossloop batches
it in its own seeded order (the samples themselves are whatever ``dataset[i]`` returns).

Nothing here imports a framework: they are told apart by what they offer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import DTypeLike

from .batches import as_canonical, epoch_order

__all__ = ["BatchSource", "NativeBatches", "SampleBatches", "as_batch_source"]

Batch = tuple[np.ndarray, np.ndarray]


@runtime_checkable
class BatchSource(Protocol):
    """What the trainer iterates: :class:`~crossloop.data.Batches` is one."""

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...


def as_batch_source(data: Any, *, dtype: DTypeLike = "float32", batch_size: int | None = None,
                    seed: int = 0, shuffle: bool = True) -> BatchSource:
    """``data`` as something with ``epoch(e, start)``: crossloop batches as they are,
    a ``tf.data.Dataset`` or any re-iterable of batches (a DataLoader) as
    :class:`NativeBatches`, a map-style dataset (``len`` and ``[i]``, a torch
    ``Dataset``) with ``batch_size`` as :class:`SampleBatches`."""
    if isinstance(data, BatchSource):
        return data
    if _is_torch(data, "IterableDataset"):
        raise TypeError("a torch IterableDataset yields single samples: wrap it in a "
                        "torch.utils.data.DataLoader(dataset, batch_size=...)")
    if hasattr(data, "element_spec") or hasattr(data, "__iter__"):
        return NativeBatches(data, dtype=dtype)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        if batch_size is None:
            raise TypeError(f"{type(data).__name__} yields single samples: give a batch_size "
                            "(Trainer.fit(..., batch_size=64)) or wrap it in a DataLoader")
        return SampleBatches(data, batch_size, dtype=dtype, seed=seed, shuffle=shuffle)
    raise TypeError(f"cannot train on {type(data).__name__}: give crossloop Batches, a torch "
                    "DataLoader or Dataset, a tf.data.Dataset, or an iterable of (inputs, "
                    "targets) batches")


class NativeBatches:
    """A re-iterable of ``(inputs, targets)`` batches (DataLoader, tf.data, a list), each
    converted to NumPy in crossloop's canonical form: floats in ``dtype``, integers
    int64, images NCHW. A tf.data pipeline's 4-D inputs are taken as NHWC (its
    framework's layout) unless ``channels_last=False``."""

    def __init__(self, data: Any, *, dtype: DTypeLike = "float32",
                 channels_last: bool | None = None):
        self.data, self.dtype = data, np.dtype(dtype)
        self.tf_data = hasattr(data, "element_spec")
        self.channels_last = self.tf_data if channels_last is None else channels_last

    def __len__(self) -> int:
        """Batches per epoch; a TypeError when the pipeline does not know (tf.data may not)."""
        return len(self.data)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """One pass over the pipeline (which draws its own order), skipping ``start`` batches."""
        items = self.data.as_numpy_iterator() if self.tf_data else iter(self.data)
        for i, item in enumerate(items):
            if i >= start:
                yield self._convert(item, i)

    def _convert(self, item: Any, i: int) -> Batch:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"batch {i} of {type(self.data).__name__} is a {type(item).__name__}"
                             f"{f' of {len(item)}' if isinstance(item, (tuple, list)) else ''}; "
                             "crossloop needs (inputs, targets) pairs")
        x, y = (_numpy(t) for t in item)
        if self.channels_last and x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        return as_canonical(x, self.dtype, "inputs"), as_canonical(y, self.dtype, "targets")


class SampleBatches:
    """A map-style dataset (``len(ds)``, ``ds[i] -> (input, target)``) batched in
    crossloop's seeded order: epoch ``e`` visits ``default_rng([seed, e]).permutation``,
    as :class:`~crossloop.data.Batches` does."""

    def __init__(self, dataset: Any, batch_size: int, *, dtype: DTypeLike = "float32",
                 seed: int = 0, shuffle: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.dtype = dataset, batch_size, np.dtype(dtype)
        self.seed, self.shuffle = seed, shuffle

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order, b = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle), self.batch_size
        for i in range(start, len(self)):
            samples = [self.dataset[int(j)] for j in order[i * b : (i + 1) * b]]
            x, y = (np.stack([_numpy(s[k]) for s in samples]) for k in (0, 1))
            yield as_canonical(x, self.dtype, "inputs"), as_canonical(y, self.dtype, "targets")


def _numpy(tensor: Any) -> np.ndarray:
    """A torch or TensorFlow tensor (or anything array-like) as a writable NumPy array
    (tf.data hands out read-only ones, which torch would refuse to share)."""
    if hasattr(tensor, "detach"):  # torch: off the autograd graph and the GPU first
        tensor = tensor.detach().cpu()
    array = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor)
    return array if array.flags.writeable else array.copy()


def _is_torch(data: Any, name: str) -> bool:
    """Whether ``data`` is an instance of ``torch.utils.data.<name>``, without importing torch."""
    return any(cls.__name__ == name and cls.__module__.startswith("torch.utils.data")
               for cls in type(data).__mro__)

