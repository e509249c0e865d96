"""The one seeded NumPy batch pipeline that every backend shares.

:class:`Batches` cuts arrays of any shape and dtype into mini-batches: each
epoch's order is a pure function of ``(seed, epoch)`` and each batch is made
on demand -- indexed, then put through the transforms (normalisation,
seeded augmentation) -- so every backend, and a resumed run, sees exactly the
same bytes, and a large or memory-mapped array is only ever read batch by batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .sources import DataError
from .transforms import BatchContext, Transform

__all__ = ["Batches", "as_canonical", "epoch_order"]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The sample order of epoch ``epoch``: ``default_rng([seed, epoch]).permutation(n)``."""
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def as_canonical(array: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """The array a backend gets: floats in ``dtype``, integers (class or token ids) as int64."""
    kind = array.dtype.kind
    if kind == "f":
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: refused by name
            return np.asarray(array, dtype)
    if kind in "iu":
        return np.asarray(array, np.int64)
    raise ValueError(f"{what} must be numbers (floats, or integer class or token ids), got dtype "
                     f"{array.dtype}")


class Batches:
    """Seeded mini-batches ``(x, y)`` over ``inputs`` and ``targets`` (sample axis first).

    Each batch is ``inputs[idx]`` put through ``transforms`` in order (see
    :mod:`crossloop.data.transforms`), then floats cast to ``dtype`` and
    integers to int64; targets likewise: class ids ``(N,)``, token sequences
    ``(N, T)`` or float regression targets of any shape. With ``shuffle``,
    epoch ``e`` visits samples in the order
    ``np.random.default_rng([seed, e]).permutation(N)``; otherwise in index order.

    The pipeline runs once on sample 0 when the Batches is made, so a transform
    that does not fit the data fails here, and :attr:`input_shape` and
    :attr:`target_shape` say what a sample looks like to the model.
    """

    def __init__(
        self,
        inputs: ArrayLike,
        targets: ArrayLike,
        batch_size: int,
        *,
        transforms: Sequence[Transform] = (),
        shuffle: bool = True,
        seed: int = 0,
        dtype: DTypeLike = "float32",
        drop_last: bool = False,
    ) -> None:
        inputs, targets = _array(inputs), _array(targets)
        dtype = np.dtype(dtype)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if inputs.ndim == 0 or targets.ndim == 0:
            raise ValueError(f"inputs and targets need a sample axis: got shapes {inputs.shape} "
                             f"and {targets.shape}")
        if len(targets) != len(inputs):
            raise ValueError(f"targets must have one entry per input: got targets {targets.shape} "
                             f"for {len(inputs)} inputs")
        if len(inputs) == 0:
            raise ValueError("no samples: inputs is empty")
        if drop_last and len(inputs) < batch_size:
            raise ValueError(
                f"drop_last with {len(inputs)} samples < batch_size {batch_size} leaves no batch")
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        if not (isinstance(seed, (int, np.integer)) and seed >= 0):
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        for transform in transforms:
            if not callable(transform):
                raise TypeError(f"a transform must be callable as transform(x, ctx), got {transform!r}")
        self._inputs, self._targets = inputs, targets
        self._transforms = tuple(transforms)
        self._batch_size, self._dtype = int(batch_size), dtype
        self._shuffle, self._seed, self._drop_last = shuffle, int(seed), drop_last
        self._target_variance: float | None = None
        self._target_range: tuple[int, int] | None = None
        x, y = self.batch(np.array([0]), epoch=0)  # the pipeline's dry run
        self.input_shape, self.target_shape = x.shape[1:], y.shape[1:]
        self.input_dtype, self.target_dtype = x.dtype, y.dtype

    @classmethod
    def from_dataset(cls, ds: Any, split: str, batch_size: int, *,
                     augment: Sequence[Transform] = (), **kw: Any) -> Batches:
        """Batches over ``ds``'s ``"train"`` or ``"test"`` split (shuffled by default for
        train), made with the data set's own ``transforms`` unless given, after the
        random transforms ``augment`` (which see the stored samples, e.g. raw pixels)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        kw.setdefault("shuffle", split == "train")
        kw["transforms"] = (*augment, *kw.get("transforms", ds.transforms))
        return cls(getattr(ds, f"{split}_inputs"), getattr(ds, f"{split}_targets"), batch_size,
                   **kw)

    @property
    def num_samples(self) -> int:
        """Number of samples N."""
        return len(self._inputs)

    @property
    def batch_size(self) -> int:
        """Samples per batch (the last one may be smaller unless ``drop_last``)."""
        return self._batch_size

    @property
    def dtype(self) -> np.dtype:
        """The floating dtype of the batches."""
        return self._dtype

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.num_samples, self._batch_size
        return n // b if self._drop_last else -(-n // b)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield epoch ``epoch``'s batches, skipping the first ``start`` (resume)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in 0..{len(self)}, got {start}")
        order = epoch_order(self.num_samples, self._seed, epoch, self._shuffle)
        return self._batches(order, epoch, start)  # a generator, but arguments checked right away

    def _batches(self, order: np.ndarray, epoch: int,
                 start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        b = self._batch_size
        for i in range(start, len(self)):
            yield self.batch(order[i * b : (i + 1) * b], epoch)

    def batch(self, indices: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of the samples ``indices`` as epoch ``epoch`` makes it; a
        :class:`~crossloop.data.sources.DataError` if it holds NaN or infinity."""
        x = np.asarray(self._inputs[indices])
        for stream, transform in enumerate(self._transforms):
            x = transform(x, BatchContext(self._seed, epoch, indices, self._dtype, stream))
        batch = (as_canonical(x, self._dtype, "inputs"),
                 as_canonical(np.asarray(self._targets[indices]), self._dtype, "targets"))
        for what, array in zip(("inputs", "targets"), batch):
            _check_finite(array, indices, what)
        return batch

    def target_variance(self) -> float:
        """The variance of the targets about their mean, averaged over target entries
        (float64, computed once): the denominator of R^2 for regression."""
        if self._target_variance is None:
            y = np.asarray(self._targets, np.float64).reshape(len(self._targets), -1)
            self._target_variance = float(np.mean(np.var(y, axis=0)))
        return self._target_variance

    def target_range(self) -> tuple[int, int] | None:
        """(min, max) of integer targets (class or token ids), computed once, so that
        ids out of the model's range fail before training; None for float targets."""
        if self._targets.dtype.kind not in "iu":
            return None
        if self._target_range is None:
            self._target_range = (int(np.min(self._targets)), int(np.max(self._targets)))
        return self._target_range

    def __repr__(self) -> str:
        return (
            f"Batches(num_samples={self.num_samples}, batch_size={self._batch_size}, "
            f"batches={len(self)}, shuffle={self._shuffle}, seed={self._seed}, "
            f"dtype={self._dtype}, input_shape={self.input_shape}, "
            f"target_shape={self.target_shape})"
        )


def _check_finite(array: np.ndarray, indices: np.ndarray, what: str) -> None:
    """Refuse NaN or infinite floats, naming the samples: trained on, they make the
    weights NaN, and TensorFlow's fused float32 ReLU (oneDNN, in a traced step) turns
    NaN into 0, so its loss can stay finite while the weights are not."""
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return
    bad = np.asarray(indices)[~np.isfinite(array.reshape(len(array), -1)).all(axis=1)]
    raise DataError(f"the {what} of sample{'s' * (len(bad) > 1)} "
                    f"{', '.join(map(str, bad[:5]))}{' ...' * (len(bad) > 5)} hold NaN or "
                    f"infinite values (as batched, in {array.dtype}); remove or fill them")


def _array(a: ArrayLike) -> np.ndarray:
    """An array as given: a NumPy array (a memory map included) is never copied."""
    return a if isinstance(a, np.ndarray) else np.asarray(a)
