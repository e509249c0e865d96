"""Tensors and a JSON document in one safetensors file: the storage under portable
weights (:mod:`crossloop.weights`) and checkpoints (:mod:`crossloop.checkpoint`).

safetensors stores raw arrays and a string header, never pickle: reading a file
runs no code. crossloop keeps its JSON document under the header's
``"crossloop"`` key. Writes go through :func:`crossloop.files.atomic_write`
(temporary file, fsync, rename), so a crash or a full disk mid-write leaves the
previous file intact. safetensors is the optional extra ``checkpoint``,
imported only when a file is written or read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .files import atomic_write

KEY = "crossloop"
# The largest JSON header crossloop reads: a checkpoint's document and tensor index
# are kilobytes (a few MB for a very long history); a larger header is refused
# before it is parsed, so a hostile file cannot make loading use much memory.
MAX_HEADER_BYTES = 16 * 2**20


class StorageError(InputError, ValueError):
    """A file is not safetensors, or its crossloop document is not a JSON object."""


def write(path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray],
          document: Mapping[str, Any]) -> Path:
    """Write ``tensors`` and the JSON ``document`` to ``path`` atomically; return the path."""
    path = Path(path)
    data = _safetensors().numpy.save(
        {name: np.require(value, requirements="C") for name, value in tensors.items()},
        metadata={KEY: json.dumps(document, allow_nan=True)})
    atomic_write(path, lambda f: f.write(data))
    return path


def read(path: str | os.PathLike[str], what: str = "a crossloop file",
         ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the tensors (in file order) of a safetensors file.

    The document is ``{}`` for a safetensors file that crossloop did not write.
    A missing file raises ``FileNotFoundError``, anything else unreadable a
    :class:`StorageError` saying that ``path`` is not ``what`` and why.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    safetensors = _safetensors()
    _check_header_size(path, what)
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            text = (f.metadata() or {}).get(KEY, "{}")
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise StorageError(f"{path} is not {what}: not a safetensors file ({type(exc).__name__}: "
                           f"{exc}); crossloop reads only safetensors files, never pickles") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StorageError(f"{path} is not {what}: its header's document is not valid JSON "
                           f"({exc})") from None
    if not isinstance(document, dict):
        raise StorageError(f"{path} is not {what}: its header's document is a "
                           f"{type(document).__name__}, not a JSON object")
    return document, tensors


def _check_header_size(path: Path, what: str) -> None:
    """A safetensors file starts with its header's length (8 bytes, little-endian):
    check it against :data:`MAX_HEADER_BYTES` and the file before anything is parsed."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise StorageError(f"{path} is not {what}: {size} bytes, too short for a safetensors "
                           "file; crossloop reads only safetensors files, never pickles")
    length = int.from_bytes(head, "little")
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise StorageError(f"{path} is not {what}: not a safetensors file (its header claims "
                           f"{length} bytes; the file has {size}, the limit is "
                           f"{MAX_HEADER_BYTES}); crossloop reads only safetensors files, "
                           "never pickles")


def _safetensors() -> Any:
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError("reading and writing weights and checkpoints needs safetensors: "
                          "install crossloop[checkpoint]") from None
    return safetensors
