"""Text corpora for language models: characters or bytes in fixed-length windows.

A corpus is read from local files (or the built-in one, the source of the
Python standard library's top-level modules, which ships with every Python:
``python-stdlib``), turned into token ids -- one per character (the vocabulary
is the corpus's sorted set of characters) or one per byte (256 ids) -- and split
by position: the first 90% of the tokens for training, the rest for
validation. Sample ``i`` is the window of ``seq_len`` tokens starting at
``i * seq_len`` as input and the same window shifted by one token as target
(next-token prediction), both ``(seq_len,)``; both are strided views of one
token array, so nothing is copied until a batch is made.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .sources import DataError, DatasetNotFoundError

__all__ = ["TOKENS", "corpus", "load_python_stdlib", "load_text"]

TOKENS = ("char", "byte")
VALIDATION_FRACTION = 0.1


def load_text(data_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
              seq_len: int = 128, tokens: str = "char", pattern: str = "**/*.txt",
              name: str = "text") -> Dataset:
    """A corpus from a text file, a folder (every file matching the glob ``pattern``,
    in sorted order) or a list of files, in windows of ``seq_len`` tokens."""
    if tokens not in TOKENS:
        raise ValueError(f"tokens must be one of {', '.join(TOKENS)}, got {tokens!r}")
    paths = _files(data_dir, pattern)
    data = (b"".join(p.read_bytes() for p in paths) if tokens == "byte"
            else "".join(_decode(p) for p in paths))
    where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files in {_root(data_dir)}"
    return corpus(name, data, seq_len=seq_len, source=where)


def load_python_stdlib(*, seq_len: int = 128, tokens: str = "char") -> Dataset:
    """The built-in corpus: this Python's standard-library top-level modules
    (``<stdlib>/*.py``, about 4.7 MB of text on Python 3.11), offline everywhere."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return load_text(stdlib, seq_len=seq_len, tokens=tokens, pattern="*.py",
                     name="python-stdlib")


def corpus(name: str, data: str | bytes, *, seq_len: int = 128, source: str = "") -> Dataset:
    """The windowed data set of ``data``: one token per character of a ``str``,
    one per byte of ``bytes``."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be an int >= 1, got {seq_len!r}")
    ids, classes = _tokenize(data)
    split = int(len(ids) * (1 - VALIDATION_FRACTION))
    train, test = _windows(ids[:split], seq_len), _windows(ids[split:], seq_len)
    for part, (inputs, _) in (("training", train), ("validation", test)):
        if len(inputs) == 0:
            raise DataError(f"{source or name}: {len(ids)} tokens give no {part} window of "
                            f"seq_len {seq_len} + 1 tokens; use more text or a shorter --seq-len")
    return Dataset(name, *train, *test, source=source, num_classes=len(classes), classes=classes)


def _decode(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        "use tokens='byte' (--tokens byte) for arbitrary bytes") from None


def _tokenize(data: str | bytes) -> tuple[np.ndarray, tuple[str, ...]]:
    """Token ids (the smallest unsigned dtype that holds them) and each id's symbol."""
    if isinstance(data, bytes):
        return np.frombuffer(data, np.uint8), tuple(chr(b) for b in range(256))
    codes = np.frombuffer(data.encode("utf-32-le"), np.uint32)
    symbols, ids = np.unique(codes, return_inverse=True)
    dtype = np.uint16 if len(symbols) <= 1 << 16 else np.uint32
    return ids.astype(dtype), tuple(chr(c) for c in symbols)


def _windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-token targets ``(N, seq_len)``: read-only views of ``ids``."""
    if len(ids) <= seq_len:
        empty = np.empty((0, seq_len), ids.dtype)
        return empty, empty
    spans = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[::seq_len]
    return spans[:, :-1], spans[:, 1:]


def _files(data_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
           pattern: str) -> list[Path]:
    if isinstance(data_dir, (str, os.PathLike)):
        root = Path(data_dir).expanduser()
        if root.is_file():
            return [root]
        paths = sorted(p for p in root.glob(pattern) if p.is_file()) if root.is_dir() else []
        if not paths:
            state = "does not exist" if not root.exists() else f"holds no {pattern} file"
            raise DatasetNotFoundError(f"text corpus {root} {state}; give a text file, a folder "
                                       f"of {pattern} files, or a list of files")
        return paths
    paths = [Path(p).expanduser() for p in data_dir]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise DatasetNotFoundError(f"text corpus: no such file {', '.join(missing) or '(none given)'}")
    return paths


def _root(data_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> str:
    return str(data_dir) if isinstance(data_dir, (str, os.PathLike)) else "the given list"
