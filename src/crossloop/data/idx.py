"""Read and write IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a big-endian header -- magic bytes ``00 00 <type> <ndim>``,
then ``ndim`` uint32 sizes -- followed by the array data in C order. Files may
be gzip-compressed; ``read_idx`` decompresses them in memory.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

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
_EXPECTED_MAGIC = "an IDX file starts with 00 00 <type> <ndim>, type one of " + ", ".join(
    f"{c:#04x} ({dt.name})" for c, dt in _DTYPES.items()
)


class IDXError(InputError, ValueError):
    """A file is not a valid IDX file (bad magic, truncated, trailing bytes, corrupt gzip)."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its shape, in native byte order.

    Single-byte arrays are zero-copy views of the decompressed bytes and so are
    read-only; multi-byte ones are converted to native byte order (a copy).
    """
    path = Path(path)
    buf = path.read_bytes()
    if buf[:2] == _GZIP_MAGIC:
        try:
            buf = gzip.decompress(buf)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt gzip stream ({e})") from None

    if len(buf) < 4:
        raise IDXError(f"{path}: truncated: {len(buf)} bytes, shorter than the 4-byte IDX magic")
    zero1, zero2, code, ndim = buf[:4]
    if zero1 or zero2 or code not in _DTYPES:
        raise IDXError(
            f"{path}: bad magic: first 4 bytes are {buf[:4].hex(' ')}; {_EXPECTED_MAGIC}"
        )
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise IDXError(
            f"{path}: truncated header: expected {header} bytes for {ndim} dimensions, "
            f"found {len(buf)}"
        )
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(buf) - header
    if found < expected:
        raise IDXError(
            f"{path}: truncated: expected {expected} data bytes for shape {shape}, found {found}"
        )
    if found > expected:
        raise IDXError(
            f"{path}: trailing garbage: expected {expected} data bytes for shape {shape}, "
            f"found {found} ({found - expected} extra)"
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


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
