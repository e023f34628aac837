"""Content-addressed downloads: ``GET``/``HEAD /blobs/sha256/{digest}``, and SRI strings.

A blob's name is its SHA-256, so its bytes never change: responses carry a strong
``ETag: "<digest>"`` and ``Cache-Control: public, max-age=31536000, immutable`` (any
cache or CDN may keep it forever), ``If-None-Match`` answers ``304``, and ``Range``
requests (one range; RFC 9110 lets a server ignore multi-range requests, which are
answered in full) resume interrupted downloads with ``206``. Bodies are streamed from
the blob store in 1 MiB chunks, never read whole into memory.

Errors are problem+json: a malformed digest is a ``400``, an unknown one a ``404``,
and a range starting past the end a ``416`` with ``Content-Range: bytes */<size>``.

A full ``GET /blobs/`` checks the bytes against the digest before sending them (up
to :data:`VERIFY_BEFORE_SENDING`; larger blobs while streaming, aborting before the
last chunk): a blob damaged on disk is a logged ``500`` "stored blob is corrupt"
naming the digest, never a ``200`` with the wrong bytes. ``/tuf/targets/`` serves the
bytes as stored: a TUF client checks every target's length and hashes against signed
metadata itself, and must be the one to refuse a tampered file.

:func:`blob_response` is shared with the TUF repository's ``/tuf/targets/`` route.

SRI
---
:func:`sri` makes Subresource Integrity strings (``sha384-<base64>``, the algorithm
browsers and the SRI spec recommend) for frontend assets; the web shell puts them in
import maps' ``integrity`` and ``<script integrity>``. It lives here, next to the other
content digests the registry hands out, rather than in :mod:`apprt.package` (which
only reads and writes archives); it accepts bytes, a path or a binary file, and
streams files.

:func:`frontend_assets` lists a stored package's ``frontend/`` files with their
``sha256-<base64>`` SRI, taken from the package's MANIFEST (the digests its signature
covers); the registry's version detail (``GET /api/v1/registry/apps/{id}/versions/{v}``)
carries them as ``frontend_assets``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path as FilePath
from typing import Annotated, Any, BinaryIO, ClassVar

import structlog
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from apprt.blobs.store import BlobNotFoundError, BlobStore, check_digest
from apprt.errors import ApprtError, PackageError, Problem
from apprt.package import read_package

__all__ = [
    "CACHE_IMMUTABLE",
    "FrontendAsset",
    "RangeNotSatisfiableError",
    "StoredBlobCorruptError",
    "blob_response",
    "frontend_assets",
    "router",
    "sri",
    "sri_from_digest",
]

log = structlog.get_logger(__name__)

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CHUNK_SIZE = 1 << 20
#: Full downloads of ``/blobs/`` up to this size are hashed before the first byte is
#: sent (a corrupt one is a 500 problem); larger ones while they stream.
VERIFY_BEFORE_SENDING = 64 << 20
SRI_ALGORITHMS = ("sha256", "sha384", "sha512")

router = APIRouter(tags=["distribution"])


class RangeNotSatisfiableError(ApprtError):
    """The requested range starts past the end of the blob (HTTP 416)."""

    status_code: ClassVar[int] = 416

    def __init__(self, size: int, header: str) -> None:
        shown = header if len(header) <= 80 else header[:77] + "..."
        super().__init__(
            [
                Problem(
                    reason=f"range {shown!r} is outside the blob's {size} bytes",
                    location="Range",
                    hint=f"ask for bytes 0-{max(size - 1, 0)}, or omit Range",
                )
            ],
            title="range not satisfiable",
        )
        self.headers = {"Content-Range": f"bytes */{size}"}


class StoredBlobCorruptError(ApprtError):
    """A stored blob's bytes no longer match its digest (HTTP 500): the storage was
    damaged or altered. Logged; the corrupt bytes are never sent."""

    status_code: ClassVar[int] = 500

    def __init__(self, digest: str, reason: str) -> None:
        super().__init__(
            [
                Problem(
                    reason=f"stored blob sha256:{digest} is corrupt: {reason}",
                    location="digest",
                    hint="the operator must restore the blob from a backup or have the "
                    "publisher upload the package again; the server log has the details",
                )
            ],
            title="stored blob is corrupt",
        )
        log.error("blob.corrupt", digest=digest, reason=reason)


# -- SRI ---------------------------------------------------------------------------


def sri(source: bytes | str | PathLike[str] | BinaryIO, algorithm: str = "sha384") -> str:
    """The Subresource Integrity string of ``source``: content bytes, a file path, or
    a binary file object (read to its end in chunks)::

        >>> sri(b"alert('Hello, world.');")
        'sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO'
    """
    if algorithm not in SRI_ALGORITHMS:
        raise ValueError(f"SRI supports {', '.join(SRI_ALGORITHMS)}, not {algorithm!r}")
    hasher = hashlib.new(algorithm)
    if isinstance(source, bytes):
        hasher.update(source)
    elif isinstance(source, str | PathLike):
        with FilePath(source).open("rb") as file:
            _feed(hasher, file)
    else:
        _feed(hasher, source)
    return sri_from_digest(hasher.digest(), algorithm)


def sri_from_digest(digest: bytes, algorithm: str = "sha384") -> str:
    """The SRI string of an already computed raw ``digest`` (not hex)."""
    if algorithm not in SRI_ALGORITHMS:
        raise ValueError(f"SRI supports {', '.join(SRI_ALGORITHMS)}, not {algorithm!r}")
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise ValueError(f"a {algorithm} digest is {hashlib.new(algorithm).digest_size} bytes")
    return f"{algorithm}-{base64.b64encode(digest).decode('ascii')}"


def _feed(hasher: hashlib._Hash, file: BinaryIO) -> None:
    while chunk := file.read(CHUNK_SIZE):
        hasher.update(chunk)


FRONTEND_DIR = "frontend/"


@dataclass(frozen=True, slots=True)
class FrontendAsset:
    """A file under ``frontend/`` of a package, as the package's MANIFEST lists it."""

    path: str  # inside the package, e.g. ``frontend/index.js``
    size: int
    sha256: str  # hex, from MANIFEST
    integrity: str  # ``sha256-<base64>``, for ``<script integrity>`` and import maps


class _AssetCache:
    """Frontend assets by package digest. A package's bytes never change, so entries
    never go stale; the LRU only bounds memory."""

    def __init__(self, size: int = 256) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[FrontendAsset, ...]] = OrderedDict()
        self._size = size

    def get(self, digest: str) -> tuple[FrontendAsset, ...] | None:
        with self._lock:
            found = self._items.get(digest)
            if found is not None:
                self._items.move_to_end(digest)
            return found

    def put(self, digest: str, assets: tuple[FrontendAsset, ...]) -> None:
        with self._lock:
            self._items[digest] = assets
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_ASSETS = _AssetCache()


def frontend_assets(store: BlobStore, digest: str) -> tuple[FrontendAsset, ...] | None:
    """The ``frontend/`` files of the package stored as blob ``digest``, with their SRI
    (``sha256``: the MANIFEST's own digests, so no file is hashed again).

    The package is read once (streamed and fully verified by
    :func:`~apprt.package.read_package`) and remembered by digest. ``None`` when the
    blob is no longer stored (a rejected or unpublished version); a blob whose bytes
    are not the package they were (damaged storage) raises
    :class:`StoredBlobCorruptError`.
    """
    digest = check_digest(digest)
    cached = _ASSETS.get(digest)
    if cached is not None:
        return cached
    try:
        source = store.open(digest)
    except BlobNotFoundError:
        return None
    try:
        with source:
            info = read_package(source)
    except PackageError as exc:
        raise StoredBlobCorruptError(digest, "; ".join(str(p) for p in exc.problems)) from None
    if info.archive_sha256 != digest:
        raise StoredBlobCorruptError(digest, f"its bytes hash to {info.archive_sha256}")
    assets = tuple(
        FrontendAsset(
            path=entry.path,
            size=entry.size,
            sha256=entry.sha256,
            integrity=sri_from_digest(bytes.fromhex(entry.sha256), "sha256"),
        )
        for entry in info.files
        if entry.path.startswith(FRONTEND_DIR)
    )
    _ASSETS.put(digest, assets)
    return assets


# -- conditional and range requests -------------------------------------------------

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def _etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison: ``W/"x"`` matches ``"x"``."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single satisfiable range; None to ignore the
    header (malformed, or several ranges); raises 416 when unsatisfiable."""
    match = _RANGE.fullmatch(header)
    if match is None:
        return None  # not one byte range: RFC 9110 says ignore it
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0:
            raise RangeNotSatisfiableError(size, header)
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid: ignored
    if first >= size:
        raise RangeNotSatisfiableError(size, header)
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _stream(file: BinaryIO, first: int, length: int) -> Iterator[bytes]:
    try:
        file.seek(first)
        left = length
        while left > 0:
            chunk = file.read(min(CHUNK_SIZE, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        file.close()


def _check_whole(file: BinaryIO, digest: str) -> None:
    """Hash ``file`` from its start; :class:`StoredBlobCorruptError` unless it is
    ``digest``. Leaves the file at its start."""
    hasher = hashlib.sha256()
    file.seek(0)
    _feed(hasher, file)
    file.seek(0)
    if hasher.hexdigest() != digest:
        raise StoredBlobCorruptError(digest, f"its bytes hash to {hasher.hexdigest()}")


def _stream_checked(file: BinaryIO, length: int, digest: str) -> Iterator[bytes]:
    """The whole blob, hashed on the way; the last chunk is held back until the hash is
    known, and on a mismatch the response is aborted instead (the client sees an
    incomplete body, never a complete corrupt one)."""
    hasher = hashlib.sha256()
    held: bytes | None = None
    for chunk in _stream(file, 0, length):
        hasher.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if hasher.hexdigest() != digest:
        raise StoredBlobCorruptError(digest, f"its bytes hash to {hasher.hexdigest()}")
    if held is not None:
        yield held


def blob_response(
    request: Request,
    store: BlobStore,
    digest: str,
    *,
    media_type: str = "application/octet-stream",
    verify: bool = False,
) -> Response:
    """The (conditional, ranged, streamed) response for blob ``digest``.

    Raises :class:`~apprt.blobs.store.BlobError` (400) for a malformed digest and
    :class:`~apprt.blobs.store.BlobNotFoundError` (404) for an unknown one.

    With ``verify``, a full ``GET`` checks the bytes against ``digest``: blobs up to
    :data:`VERIFY_BEFORE_SENDING` bytes are hashed before anything is sent and a
    mismatch is a :class:`StoredBlobCorruptError` (500 problem+json, logged); larger
    ones are hashed while streaming and the connection is aborted before the last
    chunk on a mismatch. Range requests are served unverified (a part cannot be).
    """
    digest = check_digest(digest)
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_IMMUTABLE, "Accept-Ranges": "bytes"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        store.size(digest)  # an unknown digest is still a 404
        return Response(status_code=304, headers=headers)
    file = store.open(digest)
    try:
        size = _file_size(file, store, digest)
        status, first, last = 200, 0, size - 1
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if range_header is not None and (if_range is None or if_range.strip() == etag):
            chosen = _parse_range(range_header, size)
            if chosen is not None:
                status, (first, last) = 206, chosen
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = max(last - first + 1, 0)
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            file.close()
            return Response(status_code=status, headers=headers, media_type=media_type)
        body: Iterator[bytes]
        if verify and status == 200 and size <= VERIFY_BEFORE_SENDING:
            _check_whole(file, digest)
            body = _stream(file, first, length)
        elif verify and status == 200:
            body = _stream_checked(file, length, digest)
        else:
            body = _stream(file, first, length)
    except BaseException:
        file.close()
        raise
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


def _file_size(file: BinaryIO, store: BlobStore, digest: str) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return store.size(digest)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the blob"},
    206: {"description": "the requested byte range"},
    304: {"description": "not modified (If-None-Match)"},
    400: {"description": "malformed digest"},
    404: {"description": "no such blob"},
    416: {"description": "range not satisfiable"},
    500: {"description": "the stored blob is corrupt (its bytes are not its digest)"},
}


@router.head(
    "/blobs/sha256/{digest}",
    summary="A blob's headers (size, ETag)",
    operation_id="head_blob",
    response_class=Response,
    responses=_RESPONSES,
)
@router.get(
    "/blobs/sha256/{digest}",
    summary="Download a blob by its SHA-256 (immutable, cacheable, resumable)",
    operation_id="download_blob",
    response_class=Response,
    responses=_RESPONSES,
)
def download_blob(
    digest: Annotated[
        str, Path(description="The blob's SHA-256: 64 lowercase hexadecimal characters.")
    ],
    request: Request,
) -> Response:
    """Blobs are immutable: strong ETag, ``Cache-Control: immutable``, ``If-None-Match``
    (304) and single ``Range`` requests (206/416). Full downloads are checked against
    the digest: a blob damaged in storage is a 500 problem, never corrupt bytes."""
    store: BlobStore = request.app.state.blob_store
    return blob_response(request, store, digest, verify=True)
