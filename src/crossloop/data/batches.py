"""The one seeded NumPy batch pipeline that every backend shares.

Images are normalised once, up front, into a canonical NCHW float array; each
epoch's order is a pure function of ``(seed, epoch)``, so every backend -- and a
resumed run -- sees exactly the same batches in exactly the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["Batches"]


class Batches:
    """Seeded mini-batches ``(x, y)``: x float ``(B, C, H, W)`` normalised, y int64 ``(B,)``.

    ``x = ((images / 255) - mean) / std`` computed in float64 and rounded once to
    ``dtype``. With ``shuffle``, epoch ``e`` visits samples in the order
    ``np.random.default_rng([seed, e]).permutation(N)``; otherwise in index order.
    """

    def __init__(
        self,
        images: ArrayLike,
        labels: ArrayLike,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        dtype: DTypeLike = "float32",
        mean: float = 0.1307,
        std: float = 0.3081,
        drop_last: bool = False,
    ) -> None:
        images, labels, dtype = np.asarray(images), np.asarray(labels), np.dtype(dtype)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if images.ndim not in (3, 4):
            raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"labels must be 1-D with one label per image: got labels {labels.shape} "
                f"for {len(images)} images"
            )
        if len(images) == 0:
            raise ValueError("no samples: images is empty")
        if drop_last and len(images) < batch_size:
            raise ValueError(
                f"drop_last with {len(images)} samples < batch_size {batch_size} leaves no batch"
            )
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        if not (isinstance(seed, (int, np.integer)) and seed >= 0):
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {labels.dtype}")

        if images.ndim == 3:
            images = images[:, None]
        if images.dtype == np.uint8:  # 256 possible values: normalise via a lookup table
            self._x = ((np.arange(256) / 255 - mean) / std).astype(dtype)[images]
        else:
            self._x = ((images.astype(np.float64) / 255 - mean) / std).astype(dtype)
        self._y = labels.astype(np.int64)
        self._batch_size = int(batch_size)
        self._shuffle, self._seed, self._drop_last = shuffle, seed, drop_last

    @classmethod
    def from_dataset(cls, ds: Any, split: str, batch_size: int, **kw: Any) -> Batches:
        """Batches over ``ds``'s ``"train"`` or ``"test"`` split; shuffled by default for train."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        kw.setdefault("shuffle", split == "train")
        return cls(getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels"), batch_size, **kw)

    @property
    def num_samples(self) -> int:
        """Number of samples N."""
        return len(self._y)

    @property
    def batch_size(self) -> int:
        """Samples per batch (the last one may be smaller unless ``drop_last``)."""
        return self._batch_size

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
        n = self.num_samples
        order = (
            np.random.default_rng([self._seed, epoch]).permutation(n)
            if self._shuffle
            else np.arange(n)
        )
        return self._batches(order, start)  # a generator, but arguments checked right away

    def _batches(self, order: np.ndarray, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        b = self._batch_size
        for i in range(start, len(self)):
            idx = order[i * b : (i + 1) * b]
            yield self._x[idx], self._y[idx]

    def __repr__(self) -> str:
        return (
            f"Batches(num_samples={self.num_samples}, batch_size={self._batch_size}, "
            f"batches={len(self)}, shuffle={self._shuffle}, seed={self._seed}, "
            f"dtype={self._x.dtype}, shape={self._x.shape[1:]})"
        )
