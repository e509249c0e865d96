"""Where a data set's files come from, for every file-based data set (MNIST, CIFAR-10, ...).

Lookup order (the first folder that holds all of a data set's files wins):

1. ``data_dir`` if given -- and then only it, no fallback;
2. ``$CROSSLOOP_DATA/<name>/``;
3. the cache: ``$CROSSLOOP_CACHE`` or ``$XDG_CACHE_HOME/crossloop`` or
   ``~/.cache/crossloop``, then ``/<name>/``;
4. download into the cache from the public mirrors, each file checked against
   a known MD5 before it is put in place.

Each file may be stored as published (``<file>.gz``) or uncompressed (``<file>``).
Decoded arrays are cached as ``.npy`` files under ``<cache>/decoded/<name>-<key>/``,
keyed by the source files' paths, sizes and mtimes, and opened as read-only
memory maps: a second load reads nothing until a batch needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_write
from .download import cache_dir, fetch_files

__all__ = ["DataError", "DatasetNotFoundError", "cached_arrays", "locate"]

SPLITS = ("train_inputs", "train_targets", "test_inputs", "test_targets")
_CACHE_VERSION = "2"  # bump to invalidate decoded caches when their layout changes


class DataError(InputError, ValueError):
    """A data set's files are readable but their contents are wrong or do not fit together."""


class DatasetNotFoundError(InputError, FileNotFoundError):
    """The data set's files are in none of the places looked and could not be downloaded."""


def locate(name: str, files: Sequence[str], mirrors: Sequence[str],
           checksums: Mapping[str, tuple[str, str]], data_dir: str | os.PathLike[str] | None = None,
           *, download: bool = True) -> tuple[Path, dict[str, Path]]:
    """The folder holding ``name``'s ``files`` and each file's path (see module doc).

    ``files`` are the standard names without ``.gz``; ``mirrors`` serve them as
    ``mirror + file + ".gz"`` with ``checksums`` (see
    :func:`crossloop.data.download.fetch_files`). ``download=False`` never
    touches the network.
    """
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        paths, missing = _find_files(folder, files)
        if missing:
            hint = (f" (did you mean {folder / name}?)" if not _find_files(folder / name, files)[1]
                    else "")
            raise DatasetNotFoundError(
                f"{name}: data_dir {folder} {_state(folder, missing)}{hint}; "
                f"it must hold {_file_list(files)}.")
        return folder, paths

    root = os.environ.get("CROSSLOOP_DATA")
    cache = cache_dir() / name
    candidates = [("$CROSSLOOP_DATA", Path(root).expanduser() / name)] if root else []
    looked = [] if root else ["  $CROSSLOOP_DATA: not set"]
    for label, folder in [*candidates, ("cache", cache)]:
        paths, missing = _find_files(folder, files)
        if not missing:
            return folder, paths
        looked.append(f"  {label}: {folder} ({_state(folder, missing)})")

    if download:
        missing = {f: checksums[f] for f in _find_files(cache, files)[1]}
        failures = fetch_files(missing, mirrors, cache)
        if not failures:
            return cache, _find_files(cache, files)[0]
        how = "download failed:\n" + "\n".join(f"  {f}" for f in failures)
    else:
        how = "download=False, so no download was tried."
    raise DatasetNotFoundError(
        f"{name} not found. Looked in:\n" + "\n".join(looked) + f"\n{how}\n"
        f"To fix, put {_file_list(files)}{' (each .gz or uncompressed)' if len(files) > 1 else ''} "
        f"into:\n"
        f"  {cache}{os.sep}\n"
        f"or into <root>{os.sep}{name}{os.sep} and set CROSSLOOP_DATA=<root>, "
        f"or give the folder holding them (--data-dir, or data_dir= in Python)."
    )


def _state(folder: Path, missing: list[str]) -> str:
    if not folder.is_dir():
        return "does not exist"
    return "lacks " + ", ".join(f + "[.gz]" for f in missing)


def _file_list(files: Sequence[str]) -> str:
    names = ", ".join(f + ".gz" for f in files)
    return f"the file {names}" if len(files) == 1 else f"the {len(files)} files {names}"


def _find_files(folder: Path, files: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Each file's path in ``folder`` (uncompressed preferred over .gz), and those missing."""
    found, missing = {}, []
    for f in files:
        p = next((p for p in (folder / f, folder / (f + ".gz")) if p.is_file()), None)
        if p is None:
            missing.append(f)
        else:
            found[f] = p
    return found, missing


def cached_arrays(name: str, paths: Mapping[str, Path],
                  decode: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The four split arrays (:data:`SPLITS`) of the data set stored in ``paths``: from
    the decoded cache if it has them, else ``decode()`` (then cached when writable).

    Arrays come back read-only: cached ones as memory maps, fresh ones flagged so.
    """
    stats = [(str(p.resolve()), (st := p.stat()).st_size, st.st_mtime_ns) for p in paths.values()]
    digest = hashlib.sha256(json.dumps([_CACHE_VERSION, stats]).encode()).hexdigest()[:24]
    folder = cache_dir() / "decoded" / f"{name}-{digest}"
    arrays = _read_cache(folder)
    if arrays is None:
        arrays = {key: np.asarray(a) for key, a in decode().items()}
        _write_cache(folder, arrays)
        for a in arrays.values():
            a.flags.writeable = False  # shared, possibly cached data: keep it immutable
    return arrays


def _read_cache(folder: Path) -> dict[str, np.ndarray] | None:
    """The split arrays from a decoded cache folder, or None if absent or unreadable."""
    try:
        return {key: np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)
                for key in SPLITS}
    except (OSError, ValueError, EOFError):
        return None


def _write_cache(folder: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write each array atomically; silently skip if the cache is not writable."""
    with contextlib.suppress(OSError):
        for key in SPLITS:
            atomic_write(folder / f"{key}.npy",
                         lambda f, a=arrays[key]: np.save(f, a, allow_pickle=False))
