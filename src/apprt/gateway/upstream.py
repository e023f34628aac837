"""A small HTTP/1.1 client over an instance's ingress Unix socket, built for the proxy.

Why not httpx: the proxy needs streaming both ways, per-request framing decisions and
the cheapest possible hot path; a general client does more per request than this
(see ``bench/bench_gateway.py`` for the figures). The app is untrusted, so the
response is parsed strictly: a malformed status line or header, ambiguous framing
(several different Content-Length values), obs-folded headers or bare CR/LF inside a
value make the response a 502 and the connection is dropped, never reused. A
connection goes back to the pool only after a response was read to its exact end.

Framing of responses (RFC 9112 section 6.3): no body for HEAD, 1xx, 204 and 304;
``Transfer-Encoding`` ending in ``chunked`` is decoded; any other transfer coding or no
length at all means "until the connection closes"; otherwise ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

#: Largest response head (status line and headers) accepted from an app.
MAX_HEAD = 64 * 1024
READ_SIZE = 64 * 1024
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,16}$")


class UpstreamError(Exception):
    """The app's socket refused us, or its answer broke HTTP/1.1."""


class UpstreamConnectError(UpstreamError):
    """The socket does not accept connections (the sandbox is gone or not ready)."""


class UpstreamClosedError(UpstreamError):
    """The connection closed before a whole response head arrived."""


class UpstreamProtocolError(UpstreamError):
    """The response is not well-formed HTTP/1.1."""


class Connection:
    __slots__ = ("closed", "reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reused = False
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.transport.abort()


class Upstream:
    """Pooled keep-alive connections to one ingress socket."""

    def __init__(self, path: str, *, max_idle: int = 64) -> None:
        self.path = path
        self.max_idle = max_idle
        self._idle: deque[Connection] = deque()
        self.closed = False

    async def acquire(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or conn.writer.transport.is_closing():
                conn.close()
                continue
            conn.reused = True
            return conn
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=MAX_HEAD)
        except OSError as exc:
            raise UpstreamConnectError(f"{self.path}: {exc.strerror or exc}") from None
        return Connection(reader, writer)

    def release(self, conn: Connection, reusable: bool) -> None:
        if reusable and not self.closed and not conn.closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self._idle.pop().close()


def request_head(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    parts = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


@dataclass
class ResponseHead:
    status: int
    headers: list[tuple[bytes, bytes]]  # names lowercased, hop-by-hop still in
    framing: str  # "none" | "length" | "chunked" | "close"
    length: int
    keep_alive: bool


def _parse_head(data: bytes, method: str) -> ResponseHead:
    block = data[:-4]
    # Lines end in CRLF; a lone CR or LF, or a NUL, anywhere is refused (checked on the
    # whole block at once: this runs for every response).
    rest = block.replace(b"\r\n", b"")
    if b"\r" in rest or b"\n" in rest or b"\x00" in rest:
        raise UpstreamProtocolError("bare CR, LF or NUL in the response head")
    lines = block.split(b"\r\n")
    status_line = lines[0]
    if (
        len(status_line) < 12
        or not status_line.startswith(b"HTTP/1.")
        or status_line[8:9] != b" "
        or not status_line[9:12].isdigit()
        or (len(status_line) > 12 and status_line[12:13] != b" ")
    ):
        raise UpstreamProtocolError(f"bad status line {status_line[:80]!r}")
    http10 = status_line[7:8] == b"0"
    status = int(status_line[9:12])
    if status < 100:
        raise UpstreamProtocolError(f"bad status {status}")
    headers: list[tuple[bytes, bytes]] = []
    lengths: set[bytes] = set()
    chunked = other_coding = close = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise UpstreamProtocolError(f"bad header line {line[:80]!r}")
        value = value.strip(b" \t")
        lname = name.lower()
        if lname == b"content-length":
            for part in value.split(b","):
                part = part.strip()
                if not part.isdigit():
                    raise UpstreamProtocolError("bad content-length")
                lengths.add(part.lstrip(b"0") or b"0")
        elif lname == b"transfer-encoding":
            codings = [c.strip().lower() for c in value.split(b",") if c.strip()]
            chunked = bool(codings) and codings[-1] == b"chunked"
            other_coding = not chunked
        elif lname == b"connection":
            close = close or b"close" in (t.strip().lower() for t in value.split(b","))
        headers.append((lname, value))
    keep_alive = not (close or http10)
    if len(lengths) > 1:
        raise UpstreamProtocolError("several different content-length values")
    if method == "HEAD" or status < 200 or status in (204, 304):
        return ResponseHead(status, headers, "none", 0, keep_alive)
    if chunked or other_coding:
        # With Transfer-Encoding, Content-Length is ignored and the connection is not
        # reused (it may be an attempt at smuggling).
        framing = "chunked" if chunked else "close"
        return ResponseHead(status, headers, framing, 0, keep_alive and not lengths and chunked)
    if lengths:
        return ResponseHead(status, headers, "length", int(lengths.pop()), keep_alive)
    return ResponseHead(status, headers, "close", 0, False)


async def read_head(conn: Connection, method: str) -> ResponseHead:
    """The next final response head (1xx interim responses are skipped)."""
    while True:
        try:
            data = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise UpstreamProtocolError("connection closed inside the response head") from None
            raise UpstreamClosedError("connection closed before a response") from None
        except asyncio.LimitOverrunError:
            raise UpstreamProtocolError(f"response head larger than {MAX_HEAD} bytes") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise UpstreamClosedError(str(exc)) from None
        head = _parse_head(data, method)
        if 100 <= head.status < 200 and head.status != 101:
            continue
        return head


async def iter_body(conn: Connection, head: ResponseHead) -> AsyncIterator[bytes]:
    """The response body as it arrives; raises UpstreamProtocolError on a short body."""
    reader = conn.reader
    if head.framing == "length":
        remaining = head.length
        while remaining:
            chunk = await reader.read(min(remaining, READ_SIZE))
            if not chunk:
                raise UpstreamProtocolError("response body shorter than its content-length")
            remaining -= len(chunk)
            yield chunk
    elif head.framing == "chunked":
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                raise UpstreamProtocolError("bad chunk header") from None
            size_text = line[:-2].split(b";", 1)[0].strip()
            if not _HEX.match(size_text):
                raise UpstreamProtocolError("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailers, dropped
                    try:
                        trailer = await reader.readuntil(b"\r\n")
                    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                        raise UpstreamProtocolError("bad trailer section") from None
                    if trailer == b"\r\n":
                        return
            remaining = size
            while remaining:
                chunk = await reader.read(min(remaining, READ_SIZE))
                if not chunk:
                    raise UpstreamProtocolError("connection closed inside a chunk")
                remaining -= len(chunk)
                yield chunk
            try:
                if await reader.readexactly(2) != b"\r\n":
                    raise UpstreamProtocolError("chunk not followed by CRLF")
            except asyncio.IncompleteReadError:
                raise UpstreamProtocolError("connection closed after a chunk") from None
    elif head.framing == "close":
        while chunk := await reader.read(READ_SIZE):
            yield chunk


async def drain_and_close(conn: Connection) -> None:
    conn.close()
    with contextlib.suppress(Exception):
        await conn.writer.wait_closed()
