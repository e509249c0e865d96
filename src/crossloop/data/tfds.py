"""MNIST-like data sets through TensorFlow Datasets, into the same neutral pipeline.

``load_tfds`` returns the same :class:`~crossloop.data.Dataset` (uint8 arrays,
MNIST's normalisation) as the IDX loader, so :class:`~crossloop.data.Batches`
batches it exactly the same way for every backend. ``tensorflow_datasets`` (the ``tfds`` extra, which
needs TensorFlow) is imported only when this is called.

TFDS stores its own shuffled copy of each split, so its sample order differs
from the IDX files': the same seed gives other batches than ``--data-source idx``.
"""

from __future__ import annotations

import os

import numpy as np

from .dataset import Dataset
from .sources import DatasetNotFoundError
from .transforms import MNIST

__all__ = ["load_tfds"]

_CHUNK = 10_000  # samples per tf.data batch while reading a split into NumPy


def load_tfds(name: str = "mnist", data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Load TFDS data set ``name`` ("mnist", "fashion-mnist", ...) as uint8 NumPy arrays.

    ``data_dir`` is TFDS's data directory (default: TFDS's own, ``~/tensorflow_datasets``
    or ``$TFDS_DATA_DIR``); TFDS downloads and prepares the data there if it is
    missing. Images must be single-channel; they come back as ``(N, H, W)``.
    """
    import tensorflow_datasets as tfds

    key = name.lower().replace("-", "_")  # TFDS names use underscores: fashion_mnist
    try:
        splits, info = tfds.load(key, split=["train", "test"], as_supervised=True,
                                 shuffle_files=False, with_info=True,
                                 data_dir=None if data_dir is None else os.fspath(data_dir))
        arrays = [_read(tfds, split) for split in splits]
    except Exception as exc:  # TFDS raises many kinds (its DatasetNotFoundError, network, ...)
        first_line = next(iter(str(exc).splitlines()), "")  # an unknown name lists every data set
        raise DatasetNotFoundError(
            f"tensorflow_datasets could not load {key!r} (data_dir {data_dir or 'TFDS default'}): "
            f"{type(exc).__name__}: {first_line}\nTo fix, prepare it where there is internet with "
            f"'tfds build {key} --data_dir DIR' and pass --data-dir DIR, "
            f"or use --data-source idx.") from exc
    (train_images, train_labels), (test_images, test_labels) = [
        _check(key, split, *pair) for split, pair in zip(("train", "test"), arrays)]
    return Dataset(name, train_images, train_labels, test_images, test_labels,
                   source=f"tfds:{key}" + (f" in {data_dir}" if data_dir else ""),
                   transforms=MNIST, num_classes=info.features["label"].num_classes)


def _read(tfds, ds) -> tuple[np.ndarray, np.ndarray]:
    """A supervised tf.data split as NumPy ``(images, labels)``, read in large chunks."""
    chunks = list(tfds.as_numpy(ds.batch(_CHUNK)))
    return np.concatenate([x for x, _ in chunks]), np.concatenate([y for _, y in chunks])


def _check(key: str, split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, H, W)`` uint8 images and ``(N,)`` uint8 labels, or an error naming what is off."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 1:
        raise ValueError(f"tfds {key} {split}: expected single-channel uint8 images (N, H, W, 1), "
                         f"got {x.shape} {x.dtype}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 255:
        raise ValueError(f"tfds {key} {split}: expected integer class labels in 0..255, "
                         f"got {y.shape} {y.dtype}")
    return x[..., 0], y.astype(np.uint8)
