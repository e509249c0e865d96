"""Per-batch transforms: preprocessing and seeded augmentation, in NumPy.

A transform is any callable ``transform(x, ctx) -> x`` taking one batch of
inputs (sample axis first) and a :class:`BatchContext` that says which samples
of which epoch the batch holds. Deterministic transforms ignore ``ctx``;
random ones draw from it, so each sample's draw is a pure function of
``(seed, epoch, sample index, transform position)`` -- the same on every
backend, at any batch size, in any order, and for a resumed run. A transform
returns a new array and never modifies ``x``: a batch may be a view of the
data set (or of a read-only memory map).

``MNIST`` is the pipeline crossloop has always used for MNIST-like images:
``((x / 255) - 0.1307) / 0.3081`` with a channel axis added; ``CROP_FLIP`` is
the CIFAR augmentation recipe (random 4-pixel-padded crop, horizontal flip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "AUGMENTATIONS",
    "CROP_FLIP",
    "MNIST",
    "AddChannel",
    "BatchContext",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Transform",
    "keyed_uniform",
]


@dataclass(frozen=True)
class BatchContext:
    """What a transform may know about its batch.

    ``indices`` are the samples' positions in the data set (not in the batch),
    ``dtype`` the floating dtype the batches are made in, and ``stream`` the
    transform's position in its pipeline (so two random transforms draw
    independently).
    """

    seed: int
    epoch: int
    indices: np.ndarray
    dtype: np.dtype
    stream: int = 0

    def uniform(self, draws: int = 1) -> np.ndarray:
        """``(batch, draws)`` floats in [0, 1), one row per sample: see :func:`keyed_uniform`."""
        return keyed_uniform(self.seed, self.epoch, self.indices, self.stream, draws)


class Transform(Protocol):
    """A per-batch transform: returns a new batch, never modifies ``x``."""

    def __call__(self, x: np.ndarray, ctx: BatchContext) -> np.ndarray: ...


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def keyed_uniform(seed: int, epoch: int, indices: np.ndarray, stream: int,
                  draws: int) -> np.ndarray:
    """Floats in [0, 1), shape ``(len(indices), draws)``: a counter-based generator.

    Each value is SplitMix64 of ``(seed, epoch, stream, sample index, draw)``,
    integer arithmetic only, so the bytes are the same on every machine and
    depend on nothing else -- not on the batch a sample lands in, nor on what
    was drawn before. Stateful generators cannot promise that for a resumed
    run or a different batch size.
    """
    key = np.array([seed], np.uint64)
    for word in (epoch, stream):
        key = _mix((key ^ np.uint64(word)) + _GOLDEN)
    z = _mix((key ^ np.asarray(indices, np.uint64)[:, None]) + _GOLDEN)
    z = _mix(z + _GOLDEN * np.arange(1, draws + 1, dtype=np.uint64))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class AddChannel:
    """Grey images ``(B, H, W)`` -> ``(B, 1, H, W)`` (a view); ``(B, C, H, W)`` passes."""

    def __call__(self, x: np.ndarray, ctx: BatchContext) -> np.ndarray:
        if x.ndim == 3:
            return x[:, None]
        if x.ndim == 4:
            return x
        raise ValueError(f"AddChannel expects images (B, H, W) or (B, C, H, W), got a batch of "
                         f"shape {x.shape}; for other inputs leave it out of the transforms")


@dataclass(frozen=True)
class Normalize:
    """``((x / max_value) - mean) / std`` in float64, rounded once to the batches' dtype.

    ``mean`` and ``std`` are numbers, or one per channel or feature (axis 1 of
    the batch: ``C`` of ``(B, C, H, W)``, ``F`` of ``(B, F)``). uint8 input goes
    through a 256-entry lookup table: the same values, computed once.
    """

    mean: float | Sequence[float] = 0.0
    std: float | Sequence[float] = 1.0
    max_value: float = 1.0
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        std = np.asarray(self.std, np.float64)
        if not np.all(std > 0):
            raise ValueError(f"std must be > 0, got {self.std}")
        if not self.max_value > 0:
            raise ValueError(f"max_value must be > 0, got {self.max_value}")
        if np.ndim(self.mean) > 1 or std.ndim > 1:
            raise ValueError("mean and std must be numbers or 1-D (one per channel or feature)")

    def __call__(self, x: np.ndarray, ctx: BatchContext) -> np.ndarray:
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        channels = max(mean.size, std.size) if mean.ndim or std.ndim else 0
        if channels and (x.ndim < 2 or x.shape[1] != channels):
            raise ValueError(f"Normalize has {channels} means/stds, one per entry of axis 1, "
                             f"but the batch has shape {x.shape}")
        if x.dtype == np.uint8:  # np.take on one flat table: twice as fast as fancy indexing
            table = self._table(np.dtype(ctx.dtype), channels)
            if not channels:
                return np.take(table, x)
            offsets = (np.arange(channels, dtype=np.uint16) * 256).reshape(
                (-1,) + (1,) * (x.ndim - 2))
            return np.take(table.ravel(), x + offsets)
        shape = (-1,) + (1,) * (x.ndim - 2) if channels else ()
        mean, std = mean.reshape(shape), std.reshape(shape)
        return ((x.astype(np.float64) / self.max_value - mean) / std).astype(ctx.dtype)

    def _table(self, dtype: np.dtype, channels: int) -> np.ndarray:
        """uint8 value -> normalised value, ``(256,)`` or ``(channels, 256)``."""
        if dtype not in self._tables:
            values = np.arange(256) / self.max_value
            mean = np.asarray(self.mean, np.float64)
            std = np.asarray(self.std, np.float64)
            if channels:
                values = values[None, :]
                mean = np.broadcast_to(mean, (channels,))[:, None]
                std = np.broadcast_to(std, (channels,))[:, None]
            self._tables[dtype] = ((values - mean) / std).astype(dtype)
        return self._tables[dtype]


def _as_images(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as ``(B, C, H, W)``: a view adding the channel axis of grey ``(B, H, W)`` images."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} expects images (B, H, W) or (B, C, H, W), got shape {x.shape}")
    return x[:, None] if x.ndim == 3 else x


@dataclass(frozen=True)
class RandomCrop:
    """Pad images by ``padding`` pixels of ``fill`` on each side, then cut a window of
    the original size at a random offset per sample (the CIFAR recipe)."""

    padding: int = 4
    fill: float = 0

    def __call__(self, x: np.ndarray, ctx: BatchContext) -> np.ndarray:
        images, p = _as_images(x, "RandomCrop"), self.padding
        b, c, h, w = images.shape
        padded = np.full((b, c, h + 2 * p, w + 2 * p), self.fill, images.dtype)
        padded[:, :, p : p + h, p : p + w] = images
        top, left = (ctx.uniform(2) * (2 * p + 1)).astype(np.intp).T
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        return windows[np.arange(b), :, top, left].reshape(x.shape)  # a copy


@dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    p: float = 0.5

    def __call__(self, x: np.ndarray, ctx: BatchContext) -> np.ndarray:
        _as_images(x, "RandomHorizontalFlip")
        flip = ctx.uniform(1)[:, 0] < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


MNIST: tuple[Transform, ...] = (AddChannel(), Normalize(0.1307, 0.3081, max_value=255))
CROP_FLIP: tuple[Transform, ...] = (RandomCrop(4), RandomHorizontalFlip())
AUGMENTATIONS: dict[str, tuple[Transform, ...]] = {"none": (), "crop-flip": CROP_FLIP}
