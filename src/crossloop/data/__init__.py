"""Data for crossloop: IDX files, MNIST/Fashion-MNIST sources, and the shared seeded batches.

NumPy and the standard library only; no framework is imported here.
"""

from .batches import Batches
from .idx import IDXError, read_idx, write_idx
from .sources import (
    ChecksumError,
    DataError,
    Dataset,
    DatasetNotFoundError,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
)
from .tfds import load_tfds

__all__ = [
    "Batches",
    "ChecksumError",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "IDXError",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_tfds",
    "read_idx",
    "write_idx",
]
