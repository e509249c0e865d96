"""Read and write IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a big-endian header -- magic bytes ``00 00 <type> <ndim>``,
then ``ndim`` uint32 sizes -- followed by the array data in C order. Files may
be gzip-compressed; ``read_idx`` decompresses them as a stream.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError

__all__ = ["IDXError", "read_idx", "write_idx"]

# IDX type code -> big-endian NumPy dtype.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16   # how far past the declared size a gzip stream is read, to find garbage
_BLOCK = 1 << 20   # inflated bytes read at a time
_MAX_NDIM = 32     # numpy's own limit is 64; IDX data sets use 1 to 4
# The largest array read_idx allocates by default: 16x the MNIST training images
# (47 MB) would still fit; a header that declares more is damaged or hostile.
MAX_BYTES = 2**30
_EXPECTED_MAGIC = "an IDX file starts with 00 00 <type> <ndim>, type one of " + ", ".join(
    f"{c:#04x} ({dt.name})" for c, dt in _DTYPES.items()
)


class IDXError(InputError, ValueError):
    """A file is not a valid IDX file (bad magic, truncated, trailing bytes, corrupt gzip)."""


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its shape, in native byte order.

    The header is checked before anything large is allocated: the size it
    declares must be at most ``max_bytes`` and, for a raw file, exactly what
    the file holds. A gzip file is decompressed as a stream, never past the
    declared size plus one chunk, so a small file that inflates to gigabytes
    costs no more memory than the array its header declares.
    """
    path = Path(path)
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read(path, stream, None if compressed else path.stat().st_size, max_bytes)
        except (OSError, EOFError, zlib.error) as e:
            if not compressed:
                raise
            raise IDXError(f"{path}: corrupt gzip stream ({e})") from None


def _read(path: Path, stream: BinaryIO, size: int | None, max_bytes: int) -> np.ndarray:
    """The array in ``stream`` (``size``: the raw file's length, None when gzipped)."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise IDXError(f"{path}: truncated: {len(magic)} bytes, shorter than the 4-byte IDX magic")
    zero1, zero2, code, ndim = magic
    if zero1 or zero2 or code not in _DTYPES:
        raise IDXError(f"{path}: bad magic: first 4 bytes are {magic.hex(' ')}; {_EXPECTED_MAGIC}")
    header = 4 + 4 * ndim
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXError(f"{path}: truncated header: expected {header} bytes for {ndim} dimensions, "
                       f"found {4 + len(sizes)}")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = _DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # a Python int: no overflow, however large
    if ndim > _MAX_NDIM:
        raise IDXError(f"{path}: the header declares {ndim} dimensions, more than an array can "
                       f"have ({_MAX_NDIM}); the file is damaged or not an IDX file")
    # bound the shape's extent too (an empty dimension counted as 1): numpy refuses a
    # shape whose extent overflows even when it holds no element
    extent = math.prod(max(d, 1) for d in shape) * dtype.itemsize
    if extent > max_bytes:
        declared = f"shape {shape}" if ndim <= 8 else f"{ndim} dimensions {shape[:3]}"[:-1] + ", ...)"
        size_text = f"{extent}" if extent < 10**15 else f"about 1e{len(str(extent)) - 1}"
        raise IDXError(f"{path}: the header declares {declared} of {dtype.name}, {size_text} "
                       f"bytes, more than the {max_bytes}-byte limit; the file is damaged or "
                       "not an IDX file")
    if size is not None and size - header != expected:
        _size_error(path, shape, expected, size - header)
    if size is None:  # gzip: grow with what really inflates, never past the declared size
        buffer = bytearray()
        while len(buffer) < expected and (chunk := stream.read(min(_BLOCK, expected - len(buffer)))):
            buffer += chunk
        data, got = np.frombuffer(buffer, np.uint8), len(buffer)
    else:  # a raw file of exactly the declared size (checked above)
        data = np.empty(expected, np.uint8)
        got = stream.readinto(memoryview(data)) if expected else 0
    if got < expected:
        _size_error(path, shape, expected, got)
    extra = len(stream.read(_CHUNK))  # also makes gzip check its CRC and length
    if extra:
        _size_error(path, shape, expected, expected + extra, at_least=extra == _CHUNK)
    arr = data.view(dtype).reshape(shape)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def _size_error(path: Path, shape: tuple[int, ...], expected: int, found: int,
                at_least: bool = False) -> None:
    what = "truncated" if found < expected else "trailing garbage"
    extra = f" ({'at least ' if at_least else ''}{found - expected} extra)" if found > expected else ""
    raise IDXError(f"{path}: {what}: expected {expected} data bytes for shape {shape}, "
                   f"found {'at least ' if at_least else ''}{found}{extra}")


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed if ``path`` ends in ``.gz``.

    Used by tests to make small fixture files and by users to export data.
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise IDXError(
            f"{path}: IDX cannot hold dtype {array.dtype}; "
            f"supported: {', '.join(dt.name for dt in _DTYPES.values())}"
        )
    if array.ndim > 255:
        raise IDXError(f"{path}: IDX holds at most 255 dimensions, got {array.ndim}")
    data = (
        bytes([0, 0, code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    )
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
