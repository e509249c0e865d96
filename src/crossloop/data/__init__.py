"""Data for crossloop: data sets (IDX, CIFAR-10, scikit-learn, text), the shared seeded
batches and their transforms, prefetching, and framework-native pipelines in.

NumPy and the standard library only; no framework is imported here.
"""

from . import transforms
from .batches import Batches
from .catalog import DATASETS, load_dataset
from .cifar import load_cifar10
from .dataset import Dataset
from .download import ChecksumError
from .idx import IDXError, read_idx, write_idx
from .mnist import load_fashion_mnist, load_mnist
from .native import as_batch_source
from .prefetch import prefetch
from .sklearn import load_breast_cancer, load_diabetes, load_digits
from .sources import DataError, DatasetNotFoundError
from .text import load_python_stdlib, load_text
from .tfds import load_tfds

__all__ = [
    "DATASETS",
    "Batches",
    "ChecksumError",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "IDXError",
    "as_batch_source",
    "load_breast_cancer",
    "load_cifar10",
    "load_dataset",
    "load_diabetes",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_python_stdlib",
    "load_text",
    "load_tfds",
    "prefetch",
    "read_idx",
    "transforms",
    "write_idx",
]
