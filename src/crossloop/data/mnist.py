"""MNIST and Fashion-MNIST: the four IDX files, found, downloaded and decoded once.

Where the files are looked for, the checksums and the decoded cache are
:mod:`crossloop.data.sources`'; this module names the files, mirrors and
checksums, and checks what the files hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .idx import read_idx
from .sources import SPLITS, DataError, cached_arrays, locate
from .transforms import MNIST

__all__ = ["load_fashion_mnist", "load_mnist"]

# The four files of each data set, by their standard names (without ".gz"), in SPLITS order.
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Mirrors tried in order; the file URL is mirror + name + ".gz".
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

# name -> file -> (what the MD5 covers, MD5). "raw": the uncompressed content
# (robust to re-compression); "gz": the bytes of the .gz file as published.
CHECKSUMS: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte": ("raw", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": ("raw", "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": ("raw", "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": ("raw", "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": ("gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte": ("gz", "25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte": ("gz", "bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte": ("gz", "bb300cfdad3c16e7a12a480ee83fd310"),
    },
}


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True) -> Dataset:
    """Load MNIST (60,000 train / 10,000 test handwritten digits); see :func:`load_idx_dataset`."""
    return load_idx_dataset("mnist", data_dir, download=download)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> Dataset:
    """Load Fashion-MNIST (60,000 train / 10,000 test clothing images); see
    :func:`load_idx_dataset`."""
    return load_idx_dataset("fashion-mnist", data_dir, download=download)


def load_idx_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> Dataset:
    """Load ``"mnist"`` or ``"fashion-mnist"`` from the first place that has it
    (:mod:`crossloop.data.sources`): uint8 images ``(N, 28, 28)`` and labels ``(N,)``,
    batched by default with MNIST's normalisation (:data:`~crossloop.data.transforms.MNIST`).

    ``data_dir`` is the folder holding the four files (each ``.gz`` or raw); if
    given, nothing else is tried. ``download=False`` never touches the network.
    """
    key = name.lower().replace("_", "-")
    if key not in MIRRORS:
        raise ValueError(f"unknown IDX data set {name!r}; known: {', '.join(sorted(MIRRORS))}")
    folder, paths = locate(key, FILES, MIRRORS[key], CHECKSUMS[key], data_dir, download=download)

    def decode() -> dict[str, np.ndarray]:
        arrays = [read_idx(paths[f]) for f in FILES]
        _validate(key, paths, arrays)
        return dict(zip(SPLITS, arrays))

    arrays = cached_arrays(key, paths, decode)
    return Dataset(key, **arrays, source=str(folder.resolve()), transforms=MNIST, num_classes=10)


def _validate(name: str, paths: dict[str, Path], arrays: list[np.ndarray]) -> None:
    """Check shapes, dtypes, label range and that image and label counts agree."""
    ps = [paths[f] for f in FILES]
    for split in (0, 2):
        (ip, lp), (images, labels) = ps[split : split + 2], arrays[split : split + 2]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(
                f"{name}: {ip} should hold (N, 28, 28) uint8 images, "
                f"holds {images.shape} {images.dtype}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DataError(
                f"{name}: {lp} should hold (N,) uint8 labels, holds {labels.shape} {labels.dtype}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{name}: image and label counts differ: {ip} has {len(images)} images, "
                f"{lp} has {len(labels)} labels"
            )
        if len(labels) and labels.max() > 9:
            raise DataError(f"{name}: {lp} has label {labels.max()}, outside 0..9")
