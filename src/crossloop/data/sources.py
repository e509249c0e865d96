"""MNIST and Fashion-MNIST: find the four IDX files, download them if needed, decode once.

Lookup order (first folder that holds all four files wins):

1. ``data_dir`` if given -- and then only it, no fallback;
2. ``$CROSSLOOP_DATA/<name>/``;
3. the cache: ``$CROSSLOOP_CACHE`` or ``$XDG_CACHE_HOME/crossloop`` or
   ``~/.cache/crossloop``, then ``/<name>/``;
4. download into the cache from the public mirrors, each file checked against
   a known MD5 before it is put in place.

Decoded arrays are cached as an uncompressed ``.npz`` under ``<cache>/decoded/``
keyed by the source files' paths, sizes and mtimes, so a second load is fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_write
from .download import ChecksumError, cache_dir, fetch_files
from .idx import read_idx

__all__ = [
    "ChecksumError",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
]

# The four files of each data set, by their standard names (without ".gz").
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

_CACHE_VERSION = "1"  # bump to invalidate decoded caches when their layout changes


class DataError(InputError, ValueError):
    """A data set's files are readable but their contents are wrong or do not fit together."""


class DatasetNotFoundError(InputError, FileNotFoundError):
    """The data set's files are in none of the places looked and could not be downloaded."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set's train and test splits as uint8 arrays, plus the folder they came from."""

    name: str
    train_images: np.ndarray = field(repr=False)  # (N, 28, 28) uint8
    train_labels: np.ndarray = field(repr=False)  # (N,) uint8
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.train_labels)}, "
            f"test={len(self.test_labels)}, source={self.source!r})"
        )


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True) -> Dataset:
    """Load MNIST (60,000 train / 10,000 test handwritten digits); see ``load_dataset``."""
    return load_dataset("mnist", data_dir, download=download)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> Dataset:
    """Load Fashion-MNIST (60,000 train / 10,000 test clothing images); see ``load_dataset``."""
    return load_dataset("fashion-mnist", data_dir, download=download)


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> Dataset:
    """Load ``"mnist"`` or ``"fashion-mnist"`` from the first place that has it (see module doc).

    ``data_dir`` is the folder holding the four files (each ``.gz`` or raw); if
    given, nothing else is tried. ``download=False`` never touches the network.
    """
    key = name.lower().replace("_", "-")
    if key not in MIRRORS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(MIRRORS))}")
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        paths, missing = _find_files(folder)
        if missing:
            hint = f" (did you mean {folder / key}?)" if not _find_files(folder / key)[1] else ""
            raise DatasetNotFoundError(
                f"{key}: data_dir {folder} {_state(folder, missing)}{hint}; "
                f"it must hold the four files {_file_list()}."
            )
        return _load(key, folder, paths)

    root = os.environ.get("CROSSLOOP_DATA")
    cache = cache_dir() / key
    candidates = [("$CROSSLOOP_DATA", Path(root).expanduser() / key)] if root else []
    looked = [] if root else ["  $CROSSLOOP_DATA: not set"]
    for label, folder in [*candidates, ("cache", cache)]:
        paths, missing = _find_files(folder)
        if not missing:
            return _load(key, folder, paths)
        looked.append(f"  {label}: {folder} ({_state(folder, missing)})")

    if download:
        missing = {f: CHECKSUMS[key][f] for f in _find_files(cache)[1]}
        failures = fetch_files(missing, MIRRORS[key], cache)
        if not failures:
            return _load(key, cache, _find_files(cache)[0])
        how = "download failed:\n" + "\n".join(f"  {f}" for f in failures)
    else:
        how = "download=False, so no download was tried."
    raise DatasetNotFoundError(
        f"{key} not found. Looked in:\n" + "\n".join(looked) + f"\n{how}\n"
        f"To fix, put the four files {_file_list()} (each .gz or uncompressed) into\n"
        f"  {cache}{os.sep}\n"
        f"or into <root>{os.sep}{key}{os.sep} and set CROSSLOOP_DATA=<root>, "
        f"or pass data_dir=<folder holding them>."
    )


def _state(folder: Path, missing: list[str]) -> str:
    if not folder.is_dir():
        return "does not exist"
    return "lacks " + ", ".join(f + "[.gz]" for f in missing)


def _file_list() -> str:
    return ", ".join(f + ".gz" for f in FILES)


def _find_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Each of the four files' path in ``folder`` (raw preferred over .gz), and those missing."""
    found, missing = {}, []
    for f in FILES:
        p = next((p for p in (folder / f, folder / (f + ".gz")) if p.is_file()), None)
        if p is None:
            missing.append(f)
        else:
            found[f] = p
    return found, missing


def _load(name: str, folder: Path, paths: dict[str, Path]) -> Dataset:
    """Decode the four files (or fetch them from the decoded cache) and validate them."""
    stats = [(str(p.resolve()), (st := p.stat()).st_size, st.st_mtime_ns) for p in paths.values()]
    digest = hashlib.sha256(json.dumps([_CACHE_VERSION, stats]).encode()).hexdigest()[:24]
    npz = cache_dir() / "decoded" / f"{name}-{digest}.npz"
    arrays = _read_npz(npz)
    if arrays is None:
        arrays = [read_idx(p) for p in paths.values()]
        _validate(name, paths, arrays)
        _write_npz(npz, arrays)
    for a in arrays:
        a.flags.writeable = False  # shared, possibly cached data: keep it immutable
    return Dataset(name, *arrays, source=str(folder.resolve()))


def _validate(name: str, paths: dict[str, Path], arrays: list[np.ndarray]) -> None:
    """Check shapes, dtypes, label range and that image and label counts agree."""
    ps = list(paths.values())
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


def _read_npz(path: Path) -> list[np.ndarray] | None:
    """The four arrays from a decoded cache file, or None if absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return [z[f] for f in FILES]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_npz(path: Path, arrays: list[np.ndarray]) -> None:
    """Write the decoded cache atomically; silently skip if the cache is not writable."""
    with contextlib.suppress(OSError):
        atomic_write(path, lambda f: np.savez(f, **dict(zip(FILES, arrays, strict=True))))
