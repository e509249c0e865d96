"""CIFAR-10 from its binary distribution, ``cifar-10-binary.tar.gz``.

The archive is read in place, never unpickled and never extracted: each of
``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin`` is a
run of 3073-byte records, one label byte (0-9) and a 3x32x32 image in
channel-major order -- crossloop's canonical NCHW layout as stored. The
archive is found, downloaded and checksummed like MNIST
(:mod:`crossloop.data.sources`), and decoded once into the cache.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .sources import SPLITS, DataError, cached_arrays, locate
from .transforms import Normalize

__all__ = ["load_cifar10"]

NAME = "cifar10"
ARCHIVE = "cifar-10-binary.tar"  # looked for as is or .gz; published as .gz
MIRRORS: list[str] = ["https://www.cs.toronto.edu/~kriz/"]
CHECKSUMS: dict[str, tuple[str, str]] = {ARCHIVE: ("gz", "c32a1d4ab5d03f1284b67883e8d87530")}
FOLDER = "cifar-10-batches-bin"
TRAIN_MEMBERS = tuple(f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6))
TEST_MEMBER = f"{FOLDER}/test_batch.bin"
IMAGE_SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32      # bytes per sample: label, then the image
MAX_RECORDS = 10_000          # samples per batch file in the published archive
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
# Per-channel mean and standard deviation of the training images (scaled to [0, 1]).
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, *,
                 download: bool = True) -> Dataset:
    """CIFAR-10: 50,000 train / 10,000 test uint8 images ``(N, 3, 32, 32)`` and labels
    ``(N,)``, batched by default with per-channel normalisation.

    ``data_dir`` is the folder holding ``cifar-10-binary.tar.gz`` (or the
    uncompressed ``.tar``); otherwise the lookup order of
    :mod:`crossloop.data.sources` applies. A corrupt or truncated archive is a
    :class:`~crossloop.data.DataError` naming it.
    """
    folder, paths = locate(NAME, (ARCHIVE,), MIRRORS, CHECKSUMS, data_dir, download=download)
    arrays = cached_arrays(NAME, paths, lambda: read_cifar_archive(paths[ARCHIVE]))
    return Dataset(NAME, **arrays, source=str(folder.resolve()),
                   transforms=(Normalize(MEAN, STD, max_value=255),), num_classes=len(CLASSES),
                   classes=CLASSES)


def read_cifar_archive(path: Path) -> dict[str, np.ndarray]:
    """The train and test arrays of a CIFAR-10 binary archive (``.tar`` or ``.tar.gz``).

    The archive is read as one stream to its end, so a gzip archive's CRC and
    length are checked: a flipped bit anywhere is an error, not a wrong pixel.
    """
    wanted = {*TRAIN_MEMBERS, TEST_MEMBER}
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if member.name in wanted:
                        batches[member.name] = _read_batch(tar, path, member)
            while stream.read(1 << 20):  # to the end: gzip checks its CRC and length there
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 binary archive ({type(exc).__name__}: "
                        f"{exc}); delete it and download cifar-10-binary.tar.gz again") from None
    missing = sorted(wanted - set(batches))
    if missing:
        raise DataError(f"{path}: lacks {missing[0]}; is it cifar-10-binary.tar.gz (the binary "
                        "version, not the Python or MATLAB one)?")
    train = [batches[name] for name in TRAIN_MEMBERS]
    return dict(zip(SPLITS, (np.concatenate([x for x, _ in train]),
                             np.concatenate([y for _, y in train]), *batches[TEST_MEMBER])))


def _read_batch(tar: tarfile.TarFile, path: Path,
                member: tarfile.TarInfo) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's images ``(n, 3, 32, 32)`` and labels ``(n,)``, its size checked
    against the record size before anything is read."""
    name = member.name
    if not member.isfile() or member.size % RECORD or not 0 < member.size <= MAX_RECORDS * RECORD:
        raise DataError(f"{path}: {name} holds {member.size} bytes, not a whole number (1 to "
                        f"{MAX_RECORDS}) of {RECORD}-byte records: the file is truncated or not "
                        "CIFAR-10")
    data = tar.extractfile(member).read()
    if len(data) != member.size:
        raise DataError(f"{path}: {name} is truncated: {len(data)} of {member.size} bytes")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD)
    labels = records[:, 0]
    if labels.max() >= len(CLASSES):
        raise DataError(f"{path}: {name} has label {labels.max()}, outside 0..{len(CLASSES) - 1}")
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels
