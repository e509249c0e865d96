"""Shared fixtures and helpers of the test suite.

Fixtures: ``backend`` (every installed backend, from ``crossloop.testing``),
``mnist`` (the real data set, when ``$CROSSLOOP_DATA`` points at it) and
``tiny_mnist`` (a folder of small generated MNIST files). Helpers are imported
by the test modules: ``from conftest import ...``; ``write_cifar`` makes a
CIFAR-10 archive in the real binary format.
"""

from __future__ import annotations

import io
import os
import signal
import tarfile
from pathlib import Path

import numpy as np
import pytest

import crossloop
from crossloop.data import Batches, cifar, write_idx
from crossloop.data.mnist import FILES
from crossloop.data.transforms import MNIST

pytest_plugins = ["crossloop.testing"]

try:  # fuzzing profiles: CI-sized by default, `--hypothesis-profile long` for a long run
    from hypothesis import settings as _hypothesis

    _hypothesis.register_profile("ci", max_examples=60)
    _hypothesis.register_profile("long", max_examples=3000)
    _hypothesis.load_profile("ci")
except ImportError:  # hypothesis is a dev dependency; only the fuzz tests need it
    pass


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from $CROSSLOOP_DATA (the README and CI set it); skip without it."""
    from crossloop.data import load_mnist
    if not os.environ.get("CROSSLOOP_DATA"):
        pytest.skip("set CROSSLOOP_DATA to the folder holding mnist/ to run real-data tests")
    return load_mnist(download=False)


def write_mnist(folder: Path, train: int = 128, test: int = 64, seed: int = 0) -> Path:
    """The four MNIST files (gzipped IDX) of random images and labels, in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in zip(FILES, (train, train, test, test)):
        shape, high = ((n, 28, 28), 256) if "images" in name else ((n,), 10)
        write_idx(folder / (name + ".gz"), rng.integers(0, high, shape).astype(np.uint8))
    return folder


@pytest.fixture
def tiny_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the four MNIST files, 128 train and 64 test random images, and a
    private decoded-data cache."""
    monkeypatch.setenv("CROSSLOOP_CACHE", str(tmp_path / "cache"))
    return write_mnist(tmp_path / "mnist")


def write_cifar(path: Path, per_batch: int = 4, test: int = 5, seed: int = 0,
                members: dict[str, bytes] | None = None) -> list[np.ndarray]:
    """A ``cifar-10-binary.tar.gz`` at ``path`` (a plain tar unless the name ends in
    .gz) in the published layout, ``per_batch`` random records in each of the five
    training files and ``test`` in the test file; ``members`` adds or replaces files
    by name. Returns the train images, train labels, test images, test labels."""
    rng = np.random.default_rng(seed)
    files, arrays = {}, []
    for names, n in ((cifar.TRAIN_MEMBERS, per_batch), ((cifar.TEST_MEMBER,), test)):
        images = rng.integers(0, 256, (len(names) * n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, len(names) * n, dtype=np.uint8)
        records = np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1)
        for i, name in enumerate(names):
            files[name] = records[i * n : (i + 1) * n].tobytes()
        arrays += [images, labels]
    files[f"{cifar.FOLDER}/batches.meta.txt"] = "\n".join(cifar.CLASSES).encode()
    files.update(members or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return arrays


def striped_digits(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` learnable 28x28 uint8 images and their labels: faint noise with one bright
    row, the row's index being the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    images[np.arange(n), labels, :] = 255
    return images, labels


def random_digits(n: int, batch_size: int = 16) -> Batches:
    """Batches of ``n`` random 28x28 images with random labels (seeded by ``n``)."""
    rng = np.random.default_rng(n)
    return Batches(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n),
                   batch_size, transforms=MNIST)


def normal_batch(n: int = 8, seed: int = 0, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """A ready NCHW batch: ``(n, 1, 28, 28)`` standard-normal inputs and int labels."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(dtype), rng.integers(0, 10, n)


class SignalAt(crossloop.Callback):
    """Send this process ``signum`` (SIGTERM by default) after optimizer step ``step``,
    as a scheduler or Ctrl-C would."""

    def __init__(self, step: int, signum: int = signal.SIGTERM):
        self.step, self.signum = step, signum

    def on_batch_end(self, trainer) -> None:
        if trainer.step == self.step:
            os.kill(os.getpid(), self.signum)


def assert_params_equal_if_any(a: dict, b: dict) -> None:
    """Two parameter dicts hold the same names and bitwise-equal arrays (and some)."""
    assert a and list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
