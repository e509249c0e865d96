"""Atomic file writes shared by the data cache, run files and checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object], suffix: str = ".tmp") -> None:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it into place.

    The temp file is opened read-write, and deleted if ``write`` raises.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=suffix)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cached data is not secret
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (a crash leaves the old file)."""
    data = (json.dumps(value, indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


def file_in_the_way(folder: str | os.PathLike[str]) -> Path | None:
    """The file standing at ``folder`` or at its nearest existing parent, which would
    stop the folder being made; None when the folder exists or can be made there."""
    path = Path(folder)
    for part in (path, *path.parents):
        if part.exists():
            return None if part.is_dir() else part
    return None
