"""The data sets crossloop knows by name, and :func:`load_dataset` to load any of them."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from .cifar import load_cifar10
from .dataset import Dataset
from .mnist import load_fashion_mnist, load_mnist
from .sklearn import load_breast_cancer, load_diabetes, load_digits
from .text import load_python_stdlib, load_text

__all__ = ["DATASETS", "TEXT_DATASETS", "load_dataset"]

DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "digits": load_digits,
    "diabetes": load_diabetes,
    "breast-cancer": load_breast_cancer,
    "python-stdlib": load_python_stdlib,
    "text": load_text,
}
TEXT_DATASETS = ("python-stdlib", "text")  # those that take seq_len and tokens


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None,
                 **options: Any) -> Dataset:
    """Load the data set called ``name`` (see :data:`DATASETS`; ``_`` and ``-`` alike).

    ``data_dir`` is where its files are, for those that have files (the IDX
    and CIFAR-10 ones look elsewhere too when it is not given; ``text`` needs
    it). ``options`` go to the loader: ``download`` for the file-based ones,
    ``seq_len`` and ``tokens`` for text.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    loader = DATASETS[key]
    accepted = inspect.signature(loader).parameters
    if data_dir is not None and "data_dir" not in accepted:
        raise ValueError(f"data set {key} ships inside its package and takes no data_dir "
                         f"(got {data_dir}); drop it")
    if key == "text" and data_dir is None:
        raise ValueError("data set text reads local files: give data_dir (--data-dir), a text "
                         "file or a folder of .txt files")
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"data set {key} takes no option {', '.join(unknown)}")
    if "data_dir" in accepted:
        options["data_dir"] = data_dir
    return loader(**options)
