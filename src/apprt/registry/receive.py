"""Streaming an uploaded package into the blob store, never holding it whole.

The request body is either the raw package (``application/octet-stream``, also
``application/gzip``) or ``multipart/form-data`` with the package in a part named
``file`` (other parts are ignored; their data is not kept). Bytes flow from the
ASGI receive channel, through :mod:`python_multipart`'s push parser for multipart,
into :meth:`~apprt.blobs.BlobStore.put` running in a worker thread, which hashes
and counts them and stops at the size limit: an oversize upload is cut after
``max_bytes`` + 1 bytes were read, leaves nothing behind, and gets a 413 with
``Connection: close``, so the server stops reading and the client stops sending. A
``Content-Length`` over the limit is refused before any byte is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from anyio.from_thread import run as from_thread_run
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from apprt.blobs import BlobRef, BlobStore, BlobTooLargeError
from apprt.registry.errors import RegistryError, UnsupportedUploadError, UploadTooLargeError

RAW_TYPES = frozenset({"application/octet-stream", "application/gzip", "application/x-gzip"})
FILE_FIELD = "file"
MAX_FILENAME = 255


def _too_large(limit: int) -> UploadTooLargeError:
    return UploadTooLargeError.one(
        f"the upload is larger than the limit of {limit} bytes",
        location="body",
        hint="ship a smaller package (fewer wheels, smaller assets); the operator sets "
        "the limit with APPRT_REGISTRY_MAX_UPLOAD_BYTES",
    )


class _Multipart:
    """Collects the data of the ``file`` part as the parser pushes it."""

    def __init__(self, boundary: bytes) -> None:
        self.pending: list[bytes] = []
        self.filename = ""
        self.found = False
        self._in_file = False
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def _part_begin(self) -> None:
        self._disposition = b""
        self._header_field = self._header_value = b""

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FILE_FIELD.encode() and not self.found:
            self._in_file = True
            self.found = True
            raw = options.get(b"filename", b"")
            self.filename = raw.decode("utf-8", "replace")[:MAX_FILENAME]

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False


def _bad_multipart(reason: str) -> RegistryError:
    return RegistryError.one(
        reason,
        location="body",
        hint=f"send the package raw (Content-Type: application/octet-stream) or as the "
        f"multipart part named {FILE_FIELD!r}",
        title="invalid upload",
    )


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    content_type = request.headers.get("content-type", "application/octet-stream")
    media, options = parse_options_header(content_type)
    media_type = media.decode("latin-1").lower()
    if media_type in RAW_TYPES:
        async for chunk in request.stream():
            if chunk:
                yield chunk
        return
    if media_type != "multipart/form-data":
        raise UnsupportedUploadError.one(
            f"cannot take a {media_type or 'typeless'} body",
            location="Content-Type",
            hint="send application/octet-stream (the raw .apppkg) or multipart/form-data",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise _bad_multipart("multipart body without a boundary")
    collector = _Multipart(boundary)
    try:
        async for chunk in request.stream():
            collector.parser.write(chunk)
            for piece in collector.pending:
                if piece:
                    yield piece
            collector.pending.clear()
        collector.parser.finalize()
    except MultipartParseError as exc:
        raise _bad_multipart(f"malformed multipart body: {exc}") from None
    for piece in collector.pending:
        yield piece
    if not collector.found:
        raise _bad_multipart(f"no part named {FILE_FIELD!r} in the multipart body")
    request.state.upload_filename = collector.filename


class _BlockingReader:
    """A blocking ``read(n)`` over an async iterator, for a worker thread."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._done = False

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = from_thread_run(self._next)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
                if size >= 0:
                    break
        if size < 0 or size >= len(self._buffer):
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


async def receive_package(
    request: Request, blob_store: BlobStore, *, max_bytes: int
) -> tuple[BlobRef, str]:
    """Store the uploaded package; return its blob and the client's file name."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        # (multipart adds some framing, hence the slack; the stream is cut exactly)
        raise _too_large(max_bytes)
    reader = _BlockingReader(_chunks(request))
    try:
        ref = await anyio.to_thread.run_sync(lambda: blob_store.put(reader, max_size=max_bytes))
    except BlobTooLargeError:
        raise _too_large(max_bytes) from None
    except ClientDisconnect:
        raise RegistryError.one(
            "the client went away before the upload was complete",
            location="body",
            hint="upload again",
            title="incomplete upload",
        ) from None
    filename = getattr(request.state, "upload_filename", "") or request.query_params.get(
        "filename", ""
    )
    return ref, filename[:MAX_FILENAME]
