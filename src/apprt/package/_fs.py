"""File-system helpers: atomic output files and symlink-proof directory walking.

Everything that creates files below a directory goes through a directory file
descriptor and ``O_NOFOLLOW``, so a symlink planted anywhere can never redirect a
read or a write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (a rename, a new file) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary file beside ``target`` that replaces it only on :meth:`commit`.

    Used as a context manager: leaving the block without committing (an exception)
    removes the temporary file, so no partial output is ever left behind::

        with AtomicFile(out) as f:
            f.file.write(data)
            f.commit()
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        self.tmp_path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "w+b")
        self._done = False

    def flush(self) -> None:
        """Write everything to disk (before verifying or committing)."""
        self.file.flush()
        os.fsync(self.file.fileno())

    def commit(self, mode: int = 0o644) -> None:
        self.flush()
        os.fchmod(self.file.fileno(), mode)
        self.file.close()
        self.tmp_path.replace(self.target)
        self._done = True
        fsync_dir(self.target.parent)

    def discard(self) -> None:
        if not self._done:
            self.file.close()
            with contextlib.suppress(FileNotFoundError):
                self.tmp_path.unlink()
            self._done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


def open_dir(name: str, dir_fd: int | None = None) -> int:
    """Open a directory without following a symlink in its last component."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def open_file_beneath(root_fd: int, rel: str) -> int:
    """Open ``root/rel`` for reading, refusing a symlink at every level.

    Returns a file descriptor of a regular file; raises ``OSError`` otherwise
    (``ELOOP`` for a symlink, ``ENOTDIR``, ...).
    """
    parts = rel.split("/")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = open_dir(part, fd)
            os.close(fd)
            fd = nxt
        # O_NONBLOCK: opening a FIFO swapped in for the file must not hang.
        file_fd = os.open(
            parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
        )
    finally:
        os.close(fd)
    st = os.fstat(file_fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(file_fd)
        raise OSError(f"{rel} is not a regular file")
    os.set_blocking(file_fd, True)
    return file_fd


def listdir(dir_fd: int) -> list[str]:
    """Names in an open directory, sorted (code point order = UTF-8 byte order)."""
    return sorted(os.listdir(dir_fd))
