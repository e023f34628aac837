"""A small, strict HTTP/1.1 server on an already-listening Unix socket (asyncio).

The platform API needs little of HTTP (JSON requests with a ``Content-Length``, JSON
answers) and one server per instance, so this is built on ``asyncio`` streams rather
than a second uvicorn per socket (whose signal handling belongs to the platform's
own server). The peer is untrusted (it is the app): the request head is limited
(``max_head``), the body too (``max_body``, else 413), ``Transfer-Encoding`` is
refused (411: send a ``Content-Length``), malformed lines answer 400 and close the
connection, idle keep-alive connections close after ``idle_timeout`` seconds, and at
most ``max_connections`` are served at once (more are closed at once).

The handler gets a :class:`Request` (with the peer's uid from ``SO_PEERCRED``) and
returns a :class:`Response`; an exception in it answers 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import structlog

log = structlog.get_logger(__name__)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass
class Request:
    method: str
    target: str
    path: str
    headers: dict[str, str]  # lowercase names; a repeated header is refused
    body: bytes
    peer_uid: int | None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def peer_uid(sock: socket.socket | None) -> int | None:
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class UnixHTTPServer:
    def __init__(
        self,
        listener: socket.socket,
        handler: Handler,
        *,
        max_head: int = 64 * 1024,
        max_body: int = 1024 * 1024,
        idle_timeout: float = 60.0,
        max_connections: int = 64,
    ) -> None:
        self.listener = listener
        self.handler = handler
        self.max_head = max_head
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.listener.setblocking(False)
        self._server = await asyncio.start_unix_server(
            self._connection, sock=self.listener, limit=self.max_head
        )

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        else:
            self.listener.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._tasks) >= self.max_connections or task is None:
            writer.transport.abort()
            return
        self._tasks.add(task)
        uid = peer_uid(writer.get_extra_info("socket"))
        try:
            while True:
                try:
                    request = await self._read(reader, uid)
                except _BadRequest as exc:
                    await self._send(writer, _plain(exc.status, exc.reason), close=True)
                    return
                if request is None:
                    return
                try:
                    response = await self.handler(request)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("platform_api.handler_failed", path=request.path)
                    response = _plain(500, "the platform failed to handle this call")
                close = request.headers.get("connection", "").lower() == "close"
                await self._send(writer, response, close=close)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, uid: int | None) -> Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest(400, "the request head ended early") from None
            return None  # the client closed between requests
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, f"the request head is larger than {self.max_head}") from None
        except TimeoutError:
            return None
        try:
            text = head[:-4].decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise _BadRequest(400, "undecodable request head") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not _TOKEN.match(parts[0]):
            raise _BadRequest(400, "malformed request line")
        method, target = parts[0], parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not _TOKEN.match(name) or "\r" in value or "\n" in value:
                raise _BadRequest(400, "malformed header line")
            key = name.lower()
            if key in headers:
                raise _BadRequest(400, f"header {key} appears twice")
            headers[key] = value.strip(" \t")
        if "transfer-encoding" in headers:
            raise _BadRequest(411, "send the body with a Content-Length, not chunked")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise _BadRequest(400, "malformed Content-Length")
        length = int(length_text)
        if length > self.max_body:
            raise _BadRequest(413, f"the body is larger than {self.max_body} bytes")
        body = await asyncio.wait_for(reader.readexactly(length), self.idle_timeout)
        return Request(
            method=method,
            target=target,
            path=target.split("?", 1)[0],
            headers=headers,
            body=body,
            peer_uid=uid,
        )

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response, *, close: bool) -> None:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"content-type: {response.content_type}",
            f"content-length: {len(response.body)}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        if close:
            lines.append("connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        await writer.drain()


def _plain(status: int, reason: str) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": reason,
        "problems": [{"file": "", "location": "request", "reason": reason, "hint": ""}],
    }
    return Response(status, json.dumps(body).encode(), content_type="application/problem+json")
