"""Content-addressed blob storage (see :mod:`apprt.blobs.store` for the interface)."""

from apprt.blobs.local import LocalBlobStore
from apprt.blobs.store import (
    BlobError,
    BlobNotFoundError,
    BlobRef,
    BlobStore,
    BlobTooLargeError,
    check_digest,
    is_digest,
)

__all__ = [
    "BlobError",
    "BlobNotFoundError",
    "BlobRef",
    "BlobStore",
    "BlobTooLargeError",
    "LocalBlobStore",
    "check_digest",
    "is_digest",
]
