"""The blob store interface: immutable bytes addressed by their SHA-256.

Packages, unpacked app trees, per-version environments and frontend assets are
stored once and shared by every org that uses them; the digest is both the name
and the integrity check. Code that stores or reads blobs depends on
:class:`BlobStore` only, never on a directory layout, so the embedded default
(:class:`apprt.blobs.local.LocalBlobStore`) can be swapped for object storage.

How an S3-compatible store fits the same interface (not written yet):

* ``put`` streams the input into a multipart upload under a temporary key
  (``tmp/<uuid>``) while hashing it, counting bytes against ``max_size`` and
  aborting the upload on overflow or error. Once the digest is known it copies
  the object to ``sha256/<digest>`` with a conditional write (``If-None-Match: *``;
  a 412 means the blob already exists, an idempotent success) and deletes the
  temporary key. Objects appear atomically in S3, so no partial blob is ever
  visible under its digest.
* ``open`` returns the streaming body of a ``GetObject``; ``exists``/``size`` are a
  ``HeadObject``; ``delete`` a ``DeleteObject``; ``iter_digests`` pages through
  ``ListObjectsV2`` with prefix ``sha256/``.
* Stale temporary keys and abandoned multipart uploads are removed by a bucket
  lifecycle rule (``AbortIncompleteMultipartUpload`` + expiry on ``tmp/``), the
  counterpart of :meth:`LocalBlobStore.remove_stale_temp_files`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Protocol, runtime_checkable

from apprt.errors import ApprtError

ALGORITHM = "sha256"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class Readable(Protocol):
    """Anything with a binary ``read(n)``: files, sockets' file objects, request bodies."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its SHA-256 (64 lowercase hex characters) and size in bytes."""

    digest: str
    size: int


class BlobError(ApprtError):
    """A digest is malformed (HTTP 400 when it reaches a client)."""


class BlobNotFoundError(ApprtError):
    status_code: ClassVar[int] = 404


class BlobTooLargeError(ApprtError):
    status_code: ClassVar[int] = 413


def is_digest(value: object) -> bool:
    """Whether ``value`` is 64 lowercase hex characters."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters, else raise :class:`BlobError`.

    Every store method validates its digest argument with this before touching
    storage: a digest is later part of a path or key, so ``../`` must never get there.
    """
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest
    shown = repr(digest)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise BlobError.single(
        f"not a sha256 digest: {shown}",
        location="digest",
        hint="give the 64 lowercase hexadecimal characters of the SHA-256",
    )


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage of immutable blobs."""

    def put(self, stream: Readable, *, max_size: int | None = None) -> BlobRef:
        """Store everything ``stream`` yields; storing existing content is a no-op.

        Raises :class:`BlobTooLargeError` as soon as more than ``max_size`` bytes were
        read (the rest of the stream is not read) and leaves nothing behind; the same
        holds when ``stream`` raises.
        """
        ...

    def put_bytes(self, data: bytes, *, max_size: int | None = None) -> BlobRef: ...

    def open(self, digest: str) -> BinaryIO:
        """A binary file object over the blob; raises :class:`BlobNotFoundError`."""
        ...

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int:
        """The blob's size in bytes; raises :class:`BlobNotFoundError`."""
        ...

    def delete(self, digest: str) -> bool:
        """Remove the blob; ``True`` if it existed."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest (for garbage collection and audits)."""
        ...
