"""A run folder belongs to one run: a kernel-held lock while it runs, and no new run
over another's results unless asked.

:class:`RunFolder` takes an exclusive ``flock`` on ``<folder>/.crossloop.lock``
for as long as the process holds it. The kernel releases the lock when the
process ends in any way (even ``SIGKILL``), so a killed run never leaves a stale
lock; while held, the file names the holder's PID so a refused run can name it,
and :meth:`~RunFolder.release` empties it again; a refused run removes the lock
file it made, so it leaves the folder as it found it (only a killed run leaves its
PID, in an unheld file). Holding the lock, a run removes the temporary files
(``*.tmp``, ``*.part``) that a killed write leaves behind: no other process can be
writing them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import IO

from .errors import InputError
from .files import file_in_the_way

LOCK = ".crossloop.lock"
# What a crossloop train run writes into its folder.
RUN_FILES = ("config.json", "history.json", "checkpoints", "tensorboard", "curves.png")
CHECKPOINT = Path("checkpoints") / "last.safetensors"
TEMPORARY = ("*.tmp", "*.part")
# Advice names the command-line flag and the Python argument: both reach this module.
OUT_DIR = "--out-dir (out_dir=...)"


class RunFolderError(InputError, RuntimeError):
    """A run folder is held by another process, or holds another run's results."""


class RunFolder:
    """One run's output folder. Use ``with folder.hold(): ...`` around the run."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock: IO[str] | None = None
        self._created = False   # whether hold() made the folder (then a failed start removes it)
        self._made_lock = False  # whether hold() made the lock file (a failed start removes it)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def checkpoint(self) -> Path:
        """The checkpoint a resume continues from."""
        return self.path / CHECKPOINT

    def run_files(self) -> list[str]:
        """The run files present (config, history, checkpoints, TensorBoard, curves)."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def hold(self) -> RunFolder:
        """Take the folder's lock (creating the folder), or raise :class:`RunFolderError`
        naming the process that holds it; release with :meth:`release` or ``with``."""
        import fcntl  # POSIX; imported here so that importing crossloop stays portable

        self._created = not self.path.exists()
        blocker = file_in_the_way(self.path)
        if blocker is not None:
            raise RunFolderError(f"{blocker} is a file, not a folder; choose another {OUT_DIR}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create the folder {self.path}: {exc.strerror}; choose "
                                 f"another {OUT_DIR}") from None
        self._made_lock = not (self.path / LOCK).exists()
        lock = open(self.path / LOCK, "a+")  # noqa: SIM115 (held until release())
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise RunFolderError(
                f"{self.path} is in use by another crossloop run (PID {holder}); wait for it "
                f"to finish, stop it, or choose another {OUT_DIR}") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock
        return self

    def release(self) -> None:
        """Empty the lock file of this process's PID, and release the lock."""
        if self._lock is not None:
            self._lock.truncate(0)
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def __enter__(self) -> RunFolder:
        return self if self._lock is not None else self.hold()

    def __exit__(self, kind: type | None, *exc: object) -> None:
        if kind is not None:  # a refused or failed run leaves the folder as it found it
            if self._made_lock:
                (self.path / LOCK).unlink(missing_ok=True)
            if self._created and not self.run_files():
                with contextlib.suppress(OSError):
                    self.path.rmdir()
        self.release()

    def remove_temporaries(self) -> list[Path]:
        """Delete what killed atomic writes left behind; return the paths removed."""
        self._require_lock()
        found = [p for pattern in TEMPORARY for p in self.path.rglob(pattern) if p.is_file()]
        for path in found:
            path.unlink()
        return found

    def claim(self, *, overwrite: bool) -> None:
        """Make the folder this new run's: refuse if another run's files are there,
        unless ``overwrite``, which deletes them first."""
        self._require_lock()
        present = self.run_files()
        if present and not overwrite:
            raise RunFolderError(
                f"{self.path} already holds a run ({', '.join(present)}); continue it with "
                f"--resume {self.path} (resume_from=...), choose another {OUT_DIR}, or pass "
                "--overwrite (overwrite=True) to replace it")
        for name in present:
            target = self.path / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()

    def branch_from(self, source: RunFolder, *, overwrite: bool) -> None:
        """Start this folder as a copy of ``source``'s config and last checkpoint, so a
        resumed run can continue here while ``source`` is never written."""
        self.claim(overwrite=overwrite)
        for name in ("config.json", CHECKPOINT):
            if (source.path / name).is_file():
                (self.path / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source.path / name, self.path / name)

    def _require_lock(self) -> None:
        if self._lock is None:
            raise RuntimeError(f"{self} is not held: call hold() first")
