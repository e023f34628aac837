"""Per-instance logs: one append-only file, size-capped and rotated into N generations.

The sandbox's stdout and stderr are appended to ``<log_dir>/output.log`` (the driver
opens it ``O_APPEND`` for the task, see :attr:`TaskConfig.log_path
<apprt.runtime.drivers.base.TaskConfig>`). The file is written by the sandbox, not by
the platform, so it outlives a platform restart and the re-adopted task keeps writing
to it without anyone holding a pipe.

The supervisor calls :meth:`InstanceLog.rotate_if_needed` on every watch tick; past
``max_bytes`` the file is rotated *copy-truncate* (like logrotate's ``copytruncate``):
``output.log.1`` becomes ``.2`` and so on up to ``generations``, the current content is
copied to ``output.log.1`` and the file truncated to zero. Writers opened with
``O_APPEND`` continue at the new end, so no process has to reopen anything. The price
is the usual one of copy-truncate: a line written between the copy and the truncation
can be lost, and the file can exceed the cap by what is written within one tick.

Reading (:meth:`tail`, :meth:`follow`) goes through the generations oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

LOG_NAME = "output.log"


class InstanceLog:
    """The log files of one instance in ``log_dir``."""

    def __init__(self, log_dir: Path, *, max_bytes: int, generations: int) -> None:
        self.dir = log_dir
        self.max_bytes = max_bytes
        self.generations = generations

    @property
    def path(self) -> Path:
        return self.dir / LOG_NAME

    def generation(self, n: int) -> Path:
        return self.dir / f"{LOG_NAME}.{n}" if n else self.path

    def prepare(self) -> Path:
        """Create the directory (0700) and the file (0600) the sandbox writes to."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        return self.path

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def rotate_if_needed(self) -> bool:
        """Rotate when the current file is past the cap; True if it rotated."""
        if self.size() <= self.max_bytes:
            return False
        self.rotate()
        return True

    def rotate(self) -> None:
        oldest = self.generation(self.generations)
        with contextlib.suppress(FileNotFoundError):
            oldest.unlink()
        for n in range(self.generations - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                self.generation(n).replace(self.generation(n + 1))
        tmp = self.dir / f".{LOG_NAME}.1.tmp"
        try:
            with self.path.open("rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            tmp.chmod(0o600)
            tmp.replace(self.generation(1))
        except FileNotFoundError:
            return
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.path, 0)

    def files(self) -> list[Path]:
        """Existing generations, oldest first, the current file last."""
        return [p for n in range(self.generations, -1, -1) if (p := self.generation(n)).exists()]

    def tail_bytes(self, limit: int) -> bytes:
        """The last ``limit`` bytes across generations."""
        chunks: list[bytes] = []
        need = limit
        for path in reversed(self.files()):
            if need <= 0:
                break
            try:
                with path.open("rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    start = max(0, size - need)
                    f.seek(start)
                    data = f.read(size - start)
            except FileNotFoundError:
                continue
            chunks.append(data)
            need -= len(data)
        return b"".join(reversed(chunks))

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` lines (reads at most the files' total size)."""
        if lines <= 0:
            return []
        budget = 256 * lines
        while True:
            data = self.tail_bytes(budget)
            parts = data.decode("utf-8", "replace").splitlines()
            total = sum(p.stat().st_size for p in self.files())
            if len(parts) > lines or budget >= total:
                return parts[-lines:]
            budget *= 4

    async def follow(
        self, *, interval: float = 0.2, start: int | None = None
    ) -> AsyncIterator[bytes]:
        """New data as it is written (from ``start``, default the current end), forever.

        Survives rotation: when the file shrank, what was written after our position is
        read from ``output.log.1`` before continuing at the start of the new file.
        """
        pos = self.size() if start is None else start
        while True:
            size = self.size()
            if size < pos:
                previous = self.generation(1)
                with contextlib.suppress(FileNotFoundError), previous.open("rb") as f:
                    f.seek(pos)
                    rest = f.read()
                    if rest:
                        yield rest
                pos = 0
            if size > pos:
                with self.path.open("rb") as f:
                    f.seek(pos)
                    data = f.read(size - pos)
                pos += len(data)
                if data:
                    yield data
            await asyncio.sleep(interval)
