"""Blobs as files in a local directory (the embedded default).

Layout::

    <root>/sha256/ab/ab3f...e1      one file per blob, sharded by the first two hex
    <root>/.tmp/put-XXXXXXXX        writes in progress

A write goes to ``.tmp/`` (same filesystem, so the final step is a rename), is
hashed while it streams, fsynced, then hard-linked to its digest path; the directory
is fsynced so the new name survives a crash. A reader therefore sees a complete blob
under its digest or nothing, and two writers of the same content race harmlessly:
the first link wins, the second finds the name taken, which is success. Where hard
links are unsupported, ``os.replace`` is used instead (same guarantees; an existing
blob is replaced by identical bytes).

Blob files are made read-only (0444): content-addressed data never changes in place.
Temporary files older than an hour are debris from a crash and are removed at start
(:meth:`LocalBlobStore.remove_stale_temp_files`); younger ones may belong to another
process writing right now.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import structlog

from apprt.blobs.store import (
    ALGORITHM,
    BlobNotFoundError,
    BlobRef,
    BlobTooLargeError,
    Readable,
    check_digest,
    is_digest,
)
from apprt.errors import Problem

log = structlog.get_logger(__name__)

CHUNK_SIZE = 1 << 20
STALE_TEMP_AGE = 3600.0
_TEMP_PREFIX = "put-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_found(digest: str) -> BlobNotFoundError:
    return BlobNotFoundError(
        [Problem(reason=f"no blob {digest}", location="digest", hint="upload it first")],
        title="blob not found",
    )


class LocalBlobStore:
    """A :class:`~apprt.blobs.store.BlobStore` in a directory of this machine."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / ALGORITHM
        self._tmp = self.root / ".tmp"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_of(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        digest = check_digest(digest)
        return self._blobs / digest[:2] / digest

    # -- writing ---------------------------------------------------------------------

    def put(self, stream: Readable, *, max_size: int | None = None) -> BlobRef:
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be >= 0")
        hasher = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self._tmp)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    want = CHUNK_SIZE
                    if max_size is not None:
                        # Read at most one byte past the limit: enough to know it is
                        # exceeded, never the rest of an oversized stream.
                        want = min(want, max_size - size + 1)
                    chunk = stream.read(want)
                    if not chunk:
                        break
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise BlobTooLargeError(
                            [
                                Problem(
                                    reason=f"more than {max_size} bytes",
                                    hint=f"send at most {max_size} bytes",
                                )
                            ],
                            title="blob too large",
                        )
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fchmod(out.fileno(), 0o444)
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            self._publish(tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return BlobRef(digest=digest, size=size)

    def put_bytes(self, data: bytes, *, max_size: int | None = None) -> BlobRef:
        return self.put(BytesIO(data), max_size=max_size)

    def _publish(self, tmp: Path, digest: str) -> None:
        """Give the complete, fsynced ``tmp`` its digest name, atomically."""
        final = self.path_of(digest)
        shard = final.parent
        if not shard.is_dir():
            shard.mkdir(exist_ok=True)
            _fsync_dir(self._blobs)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return  # same content already stored: idempotent success
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            tmp.replace(final)  # filesystem without hard links
        _fsync_dir(shard)

    # -- reading ---------------------------------------------------------------------

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path_of(digest).open("rb")
        except FileNotFoundError:
            raise _not_found(digest) from None

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise _not_found(digest) from None

    def delete(self, digest: str) -> bool:
        path = self.path_of(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def iter_digests(self) -> Iterator[str]:
        for shard in sorted(self._blobs.iterdir()):
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            for entry in sorted(shard.iterdir()):
                if is_digest(entry.name) and entry.name.startswith(shard.name):
                    yield entry.name

    # -- housekeeping ----------------------------------------------------------------

    def remove_stale_temp_files(self, older_than: float = STALE_TEMP_AGE) -> int:
        """Delete temporary files not modified for ``older_than`` seconds; return how many."""
        cutoff = time.time() - older_than
        removed = 0
        for entry in self._tmp.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # removed concurrently
        if removed:
            log.info("blobs.stale_temp_removed", count=removed, dir=str(self._tmp))
        return removed
