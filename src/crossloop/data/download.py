"""Downloads with checksums: a file is streamed from the first mirror that serves it,
its MD5 is checked, and only then is it renamed into place (a partial or bad
download never lands). Progress is drawn on stderr when it is a terminal.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from ..files import atomic_write

_TIMEOUT_S = 30
_CHUNK = 1 << 20


class ChecksumError(InputError, OSError):
    """A downloaded file's MD5 does not match the published one."""


def cache_dir() -> Path:
    """Where downloads and decoded arrays go: ``$CROSSLOOP_CACHE``, else
    ``$XDG_CACHE_HOME/crossloop``, else ``~/.cache/crossloop``."""
    if d := os.environ.get("CROSSLOOP_CACHE"):
        return Path(d).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "crossloop"


def fetch_files(files: Mapping[str, tuple[str, str]], mirrors: Sequence[str], folder: Path,
             suffix: str = ".gz") -> list[str]:
    """Download each of ``files`` (name -> (what the MD5 covers, MD5)) as
    ``mirror + name + suffix`` into ``folder``; return the failures (empty = done).

    ``"gz"`` checksums cover the bytes as published, ``"raw"`` ones the
    uncompressed content (robust to re-compression). Each file is tried on
    every mirror in turn. A checksum mismatch is reported and the next mirror
    tried; if every mirror of a file gave a bad checksum, ``ChecksumError`` is
    raised rather than pretending the data is absent.
    """
    for name, (kind, md5) in files.items():
        errors: list[str] = []
        bad: list[ChecksumError] = []
        for mirror in mirrors:
            url = mirror + name + suffix
            try:
                atomic_write(folder / (name + suffix), partial(_fetch, url, kind, md5),
                             suffix=".part")
                break
            except ChecksumError as e:
                bad.append(e)
                print(f"crossloop: {e}", file=sys.stderr)
            except (OSError, http.client.HTTPException) as e:  # offline, 404, timeout, read-only
                errors.append(f"{url}: {e}")
        else:
            if bad and len(bad) == len(mirrors):
                raise ChecksumError("\n".join(str(e) for e in bad))
            return errors + [str(e) for e in bad]
    return []


def _fetch(url: str, kind: str, md5: str, out: BinaryIO) -> None:
    """Stream ``url`` into ``out`` with progress on stderr, then check its MD5."""
    print(f"crossloop: downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
        total = int(resp.headers.get("Content-Length") or 0)
        gz_md5 = hashlib.md5(usedforsecurity=False)
        for chunk in _progress(_chunks(resp), total):
            gz_md5.update(chunk)
            out.write(chunk)
    if kind == "gz":
        got = gz_md5.hexdigest()
    else:
        raw_md5 = hashlib.md5(usedforsecurity=False)
        out.seek(0)
        try:
            with gzip.GzipFile(fileobj=out, mode="rb") as g:
                for chunk in _chunks(g):
                    raw_md5.update(chunk)
        except (OSError, EOFError) as e:
            raise ChecksumError(f"{url}: not a valid gzip file ({e}); expected MD5 {md5}") from None
        got = raw_md5.hexdigest()
    if got != md5:
        raise ChecksumError(f"{url}: MD5 mismatch ({kind}): expected {md5}, got {got}")


def _chunks(f: BinaryIO) -> Iterable[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _progress(chunks: Iterable[bytes], total: int) -> Iterable[bytes]:
    """Pass chunks through, drawing a percentage on stderr when it is a terminal."""
    stderr = sys.stderr
    tty, done, shown = stderr.isatty(), 0, -1
    for chunk in chunks:
        yield chunk
        done += len(chunk)
        pct = 100 * done // total if total else -1
        if tty and total and pct != shown:
            print(f"\r  {pct:3d}%  {done / 1e6:.1f} / {total / 1e6:.1f} MB", end="", file=stderr)
            shown = pct
    print(("\n" if tty and total else "") + f"  done, {done / 1e6:.1f} MB", file=stderr)
