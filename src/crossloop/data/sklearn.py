"""scikit-learn's bundled data sets: real data that ships inside the package, no download.

- ``digits``: 1,797 8x8 grey images of handwritten digits (uint8 0..16), 10 classes;
- ``diabetes``: 442 patients, 10 standardised features, a float disease-progression
  target ``(N, 1)`` (regression);
- ``breast_cancer``: 569 tumours, 30 features, 2 classes.

scikit-learn ships no train/test split, so crossloop fixes one: the samples in
``default_rng(0).permutation(N)`` order, the first fifth for test and the rest
for training -- the same on every machine. Features are standardised per batch
with the training split's mean and standard deviation (digits: one mean and
std over all pixels, like MNIST). scikit-learn (the ``sklearn`` extra) is
imported only when one of these is loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dataset import Dataset
from .sources import DatasetNotFoundError
from .transforms import AddChannel, Normalize

__all__ = ["load_breast_cancer", "load_diabetes", "load_digits"]

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def load_digits() -> Dataset:
    """Digits: uint8 images ``(N, 8, 8)`` with values 0..16, labels 0..9."""
    x, y, data = _load("digits")
    images = x.reshape(-1, 8, 8).astype(np.uint8)
    train, test = _split(len(images))
    pixels = images[train] / 16
    return _dataset("digits", images, y, (AddChannel(),
                                          Normalize(pixels.mean(), pixels.std(), max_value=16)),
                    num_classes=10, classes=tuple(str(c) for c in data.target_names))


def load_diabetes() -> Dataset:
    """Diabetes: float features ``(N, 10)``, float targets ``(N, 1)`` (regression)."""
    x, y, _ = _load("diabetes")
    return _dataset("diabetes", x, y.reshape(-1, 1), _standardize(x))


def load_breast_cancer() -> Dataset:
    """Breast cancer: float features ``(N, 30)``, labels 0 (malignant) and 1 (benign)."""
    x, y, data = _load("breast_cancer")
    return _dataset("breast-cancer", x, y, _standardize(x), num_classes=2,
                    classes=tuple(str(c) for c in data.target_names))


def _load(name: str) -> tuple[np.ndarray, np.ndarray, Any]:
    try:
        from sklearn import datasets
    except ImportError:
        raise DatasetNotFoundError(
            f"{name} ships inside scikit-learn, which is not installed: "
            "pip install 'crossloop[sklearn]'") from None
    data = getattr(datasets, f"load_{name}")()
    return np.asarray(data.data), np.asarray(data.target), data


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of the fixed split (see module doc)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    test = int(n * TEST_FRACTION)
    return order[test:], order[:test]


def _standardize(x: np.ndarray) -> tuple[Normalize]:
    """Per-feature normalisation by the training split's mean and standard deviation."""
    train = x[_split(len(x))[0]]
    return (Normalize(tuple(train.mean(0)), tuple(train.std(0))),)


def _dataset(name: str, x: np.ndarray, y: np.ndarray, transforms: tuple,
             **options: Any) -> Dataset:
    train, test = _split(len(x))
    arrays = [x[train], y[train], x[test], y[test]]
    for a in arrays:
        a.flags.writeable = False
    return Dataset(name, *arrays, source=f"scikit-learn: sklearn.datasets.load_{name.replace('-', '_')}",
                   transforms=transforms, **options)
