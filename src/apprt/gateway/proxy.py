"""The reverse proxy: ``/apps/{org}/{app id}/{rest}`` -> the instance's ingress socket.

A raw ASGI app (no router, no dependency injection on the hot path). Per request:

1. **route**: org and app id from the raw path; the rest (percent-encoding kept) and
   the query become the upstream target;
2. **who**: the API token (``Authorization: Bearer``, else the session cookie) must
   belong to a member of the organization (platform admins reach every org); results
   are cached for :data:`AUTH_TTL_S` seconds so a burst costs one database lookup;
3. **limits**: a token bucket per app and org (429 + ``Retry-After``), the app's
   ``max_concurrency`` (429), the body size (413, from ``Content-Length`` at once, or
   while streaming);
4. **wake**: a Suspended or Installed instance is started and the request waits for it
   (concurrent requests share one wake), up to the app's ``request_timeout_s``;
5. **forward**: hop-by-hop headers, spoofed ``x-apprt-*`` headers, the caller's
   credentials (``Authorization``, the platform session cookie) are removed; signed
   identity headers and ``x-forwarded-*`` are added; the body streams both ways
   (nothing buffered beyond one read); no response head within ``request_timeout_s`` is
   a 504, and so is a silence as long in the middle of the body (the connection is then
   cut, the status already sent); each is recorded as a ``request_timeout`` limit event
   of the instance (``Supervisor.note_limit``).

Errors made here are ``application/problem+json`` like the rest of the API; the app's
own error responses pass through untouched. WebSocket requests follow the same steps,
then frames are relayed both ways (``websockets`` over the Unix socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import structlog
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from apprt.accounts.models import Role
from apprt.accounts.orgs import membership_of, org_for
from apprt.accounts.services import authenticate
from apprt.accounts.views import SESSION_COOKIE, NotAuthenticatedError
from apprt.db.engine import session_scope
from apprt.errors import ApprtError, Problem
from apprt.gateway.identity import IdentitySigner
from apprt.gateway.upstream import (
    READ_SIZE,
    Connection,
    ResponseHead,
    Upstream,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    iter_body,
    read_head,
    request_head,
)
from apprt.runtime.supervisor import Slot, Supervisor
from apprt.server import problem_response, problem_type, unexpected_error_response
from apprt.settings import Settings

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = b"/apps/"
#: How long an authentication result is reused (token revocation and membership
#: changes reach the gateway within this time).
AUTH_TTL_S = 5.0
_AUTH_CACHE_MAX = 10_000
#: ``x-apprt-config``: the organization's settings for the app. Per-org settings arrive
#: with the install engine; until then every app gets an empty object.
EMPTY_CONFIG = "{}"
_SEGMENT = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
#: Request headers never forwarded besides hop-by-hop ones.
_DROP_REQUEST = frozenset({b"authorization", b"forwarded", b"content-length", b"expect"})
#: Response headers the front server sets itself.
_DROP_RESPONSE = frozenset({b"date", b"content-length"})


# -- errors -------------------------------------------------------------------------


class GatewayError(ApprtError):
    status_code: ClassVar[int] = 502

    def __init__(
        self, reason: str, *, hint: str = "", title: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__([Problem(reason, location="gateway", hint=hint)], title=title or reason)
        self.headers = headers or {}


class AppNotFoundError(GatewayError):
    status_code: ClassVar[int] = 404


class TooManyRequestsError(GatewayError):
    status_code: ClassVar[int] = 429


class AppUnavailableError(GatewayError):
    status_code: ClassVar[int] = 503


class BodyTooLargeError(GatewayError):
    status_code: ClassVar[int] = 413


class AppTimeoutError(GatewayError):
    status_code: ClassVar[int] = 504


class BadGatewayError(GatewayError):
    status_code: ClassVar[int] = 502


class _ClientGone(Exception):
    pass


# -- pieces -------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True)
class Caller:
    user: str
    roles: tuple[str, ...]


@dataclass
class _Incoming:
    """What the proxy needs from the client's headers, read in one pass."""

    forward: list[tuple[bytes, bytes]]
    token: str | None
    content_length: int | None
    chunked: bool
    host: bytes
    subprotocols: list[str]


def _cookie_without_session(value: bytes) -> bytes:
    kept = [
        part
        for part in value.split(b";")
        if part.strip() and part.strip().split(b"=", 1)[0] != SESSION_COOKIE.encode()
    ]
    return b";".join(kept).strip()


def _read_headers(scope: Scope, websocket: bool) -> _Incoming:
    connection_tokens: set[bytes] = set()
    raw = scope["headers"]
    for name, value in raw:
        if name == b"connection":
            connection_tokens.update(t.strip().lower() for t in value.split(b","))
    forward: list[tuple[bytes, bytes]] = []
    token = cookie_token = None
    content_length: int | None = None
    chunked = False
    host = b""
    subprotocols: list[str] = []
    for name, value in raw:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials:
                token = credentials.strip().decode("latin-1")
            continue
        if name == b"content-length":
            content_length = int(value) if value.isdigit() else None
            continue
        if name == b"transfer-encoding":
            chunked = True
            continue
        if name == b"host":
            host = value
            if websocket:
                continue  # the WebSocket client sets its own
        elif name == b"cookie":
            for part in value.split(b";"):
                key, _, val = part.strip().partition(b"=")
                if key == SESSION_COOKIE.encode():
                    cookie_token = val.decode("latin-1")
            value = _cookie_without_session(value)
            if not value:
                continue
        elif name == b"sec-websocket-protocol":
            subprotocols += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
            continue
        if (
            name in HOP_BY_HOP
            or name in connection_tokens
            or name in _DROP_REQUEST
            or name.startswith((b"x-apprt-", b"proxy-", b"x-forwarded-"))
            or (websocket and name.startswith(b"sec-websocket-"))
        ):
            continue
        forward.append((name, value))
    return _Incoming(forward, token or cookie_token, content_length, chunked, host, subprotocols)


def _response_headers(
    head_headers: list[tuple[bytes, bytes]], framing: str
) -> list[tuple[bytes, bytes]]:
    connection_tokens: set[bytes] = set()
    for name, value in head_headers:
        if name == b"connection":
            connection_tokens.update(t.strip().lower() for t in value.split(b","))
    out = []
    for name, value in head_headers:
        if (
            name in HOP_BY_HOP
            or name in connection_tokens
            or name in _DROP_RESPONSE
            or name.startswith(b"proxy-")
        ):
            continue
        out.append((name, value))
    return out


# -- the proxy ----------------------------------------------------------------------


class Gateway:
    """The ASGI proxy; one per platform app (``app.state.gateway``)."""

    def __init__(
        self,
        settings: Settings,
        supervisor: Supervisor,
        sessions: sessionmaker[Session],
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.sessions = sessions
        self.metrics = metrics
        self.upstreams: dict[str, Upstream] = {}
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.auth_cache: dict[tuple[str, str], tuple[float, Caller]] = {}
        #: Prepared signers per (instance, grants, org, caller, config).
        self.signers: dict[tuple[str, tuple[str, ...], str, Caller, str], IdentitySigner] = {}
        #: ``(org, app id) -> settings JSON``; the install engine sets it (in memory).
        self.config_for: Callable[[str, str], str] | None = None
        supervisor.add_stop_listener(self._drop_upstream)

    def _drop_upstream(self, socket: Path) -> None:
        upstream = self.upstreams.pop(str(socket), None)
        if upstream is not None:
            upstream.close()

    def close(self) -> None:
        for upstream in self.upstreams.values():
            upstream.close()
        self.upstreams.clear()

    def _upstream(self, socket: str) -> Upstream:
        upstream = self.upstreams.get(socket)
        if upstream is None:
            upstream = self.upstreams[socket] = Upstream(socket)
        return upstream

    # -- who is calling --------------------------------------------------------------

    async def _authenticate(self, token: str | None, org: str) -> Caller:
        if not token:
            raise NotAuthenticatedError("no bearer token or session cookie", invalid_token=False)
        key = (token, org)  # held in memory only, like the request that carried it
        now = time.monotonic()
        cached = self.auth_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        caller = await run_in_threadpool(self._lookup_caller, token, org)
        if len(self.auth_cache) >= _AUTH_CACHE_MAX:
            self.auth_cache.clear()
        self.auth_cache[key] = (now + AUTH_TTL_S, caller)
        return caller

    def _lookup_caller(self, token: str, org_slug: str) -> Caller:
        with session_scope(self.sessions) as session:
            user = authenticate(session, token)
            if user is None:
                raise NotAuthenticatedError(
                    "unknown, expired, revoked or disabled user's token", invalid_token=True
                )
            org = org_for(session, user, org_slug)  # 404 for strangers
            membership = membership_of(session, user, org)
            roles = [membership.role.value] if membership is not None else []
            if user.role is Role.PLATFORM_ADMIN:
                roles.append(Role.PLATFORM_ADMIN.value)
            return Caller(user=user.name, roles=tuple(roles))

    # -- routing and limits ----------------------------------------------------------

    @staticmethod
    def _route(scope: Scope) -> tuple[str, str, str]:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        if not raw.startswith(PREFIX):
            raise AppNotFoundError("not an app path", hint="use /apps/{org}/{app id}/...")
        org_b, _, rest = raw[len(PREFIX) :].partition(b"/")
        app_b, slash, tail = rest.partition(b"/")
        org, app_id = org_b.decode("latin-1"), app_b.decode("latin-1")
        if not _SEGMENT.match(org) or not _SEGMENT.match(app_id):
            raise AppNotFoundError(
                f"no app at {raw[:200].decode('latin-1')}",
                hint="use /apps/{org}/{app id}/...",
            )
        target = "/" + tail.decode("latin-1") if slash else "/"
        if unquote(target).startswith("/.apprt/"):  # the platform's door into the app
            raise AppNotFoundError(
                f"no app path {target[:200]}", hint="paths under /.apprt/ are reserved"
            )
        query: bytes = scope.get("query_string") or b""
        if query:
            target += "?" + query.decode("latin-1")
        return org, app_id, target

    def _limit(self, slot: Slot, org: str) -> None:
        key = (org, slot.app_id)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(
                self.settings.gateway_rate_per_s, self.settings.gateway_rate_burst
            )
        wait = bucket.take(time.monotonic())
        if wait:
            retry = max(1, math.ceil(wait))
            raise TooManyRequestsError(
                f"rate limit of {self.settings.gateway_rate_per_s:g} requests/s for "
                f"{slot.app_id} in {org} reached",
                hint=f"retry after {retry} s",
                title="too many requests",
                headers={"Retry-After": str(retry)},
            )
        limit = slot.resources.max_concurrency
        if slot.in_flight + slot.waiting >= limit:
            raise TooManyRequestsError(
                f"{slot.app_id} already has {limit} requests in flight (its max_concurrency)",
                hint="retry shortly",
                title="too many requests",
                headers={"Retry-After": "1"},
            )

    async def _ready(self, slot: Slot) -> str:
        """Wake the instance if needed; the socket to use."""
        if not slot.serving:
            slot.waiting += 1
            try:
                await self.supervisor.ensure_running(slot, slot.resources.request_timeout_s)
            finally:
                slot.waiting -= 1
        socket = slot.ingress
        if socket is None or not slot.serving:
            raise BadGatewayError(f"{slot.app_id} is {slot.state.value}", hint="retry shortly")
        return socket

    def _outgoing(
        self,
        slot: Slot,
        caller: Caller,
        org: str,
        incoming: _Incoming,
        scope: Scope,
        method: str,
        target: str,
    ) -> list[tuple[bytes, bytes]]:
        headers = incoming.forward
        config = self.config_for(org, slot.app_id) if self.config_for else EMPTY_CONFIG
        key = (slot.id, slot.grants, org, caller, config)
        signer = self.signers.get(key)
        if signer is None:
            if len(self.signers) >= _AUTH_CACHE_MAX:
                self.signers.clear()
            signer = self.signers[key] = IdentitySigner(
                slot.identity_key,
                org=org,
                user=caller.user,
                roles=caller.roles,
                grants=slot.grants,
                config=config,
            )
        headers += signer.headers(method, target)
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))
        headers.append(
            (b"x-forwarded-proto", b"https" if scope.get("scheme") in ("https", "wss") else b"http")
        )
        if incoming.host:
            headers.append((b"x-forwarded-host", incoming.host))
        headers.append((b"x-forwarded-prefix", f"/apps/{org}/{slot.app_id}".encode()))
        return headers

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    def _serving(self, org: str, app_id: str) -> Slot:
        """The instance to route to: 404 when the app is not installed, 503 while an
        install or update has its route closed (not yet activated)."""
        slot = self.supervisor.serving(org, app_id)
        if slot is not None:
            return slot
        if self.supervisor.lookup(org, app_id) is not None:
            raise AppUnavailableError(
                f"{app_id} is being installed or updated in {org}",
                hint="retry shortly; the job's progress is in GET /api/v1/jobs",
                title="app not available yet",
                headers={"Retry-After": "5"},
            )
        raise AppNotFoundError(f"{app_id} is not installed in {org}", hint="install it first")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        labels = ("-", "-")
        sent = _SendTracker(send)
        status = 500
        try:
            org, app_id, target = self._route(scope)
            incoming = _read_headers(scope, websocket=False)
            caller = await self._authenticate(incoming.token, org)
            slot = self._serving(org, app_id)
            labels = (org, app_id)
            self._limit(slot, org)
            limit = self.settings.gateway_max_body_bytes
            if incoming.content_length is not None and incoming.content_length > limit:
                raise BodyTooLargeError(
                    f"the request body is {incoming.content_length} bytes; the limit is {limit}",
                    hint="send a smaller body",
                    title="request body too large",
                )
            status = await self._forward(scope, receive, sent, slot, caller, org, incoming, target)
        except ApprtError as exc:
            status = getattr(exc, "status_code", 400)
            if self.metrics is not None and labels[0] != "-" and status >= 429:
                self.metrics.error(*labels, type(exc).__name__.removesuffix("Error").lower())
            if not sent.started:
                await self._problem(scope, receive, sent, exc)
        except _ClientGone:
            status = 499
        except Exception as exc:  # a bug here must still answer like the rest of the API
            status = 500
            if not sent.started:
                await self._unexpected(scope, receive, sent, exc)
            else:
                log.exception("gateway.unexpected_error", path=scope.get("path"))
        finally:
            if self.metrics is not None:
                self.metrics.request(*labels, status, time.perf_counter() - started)

    async def _unexpected(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        # The same 500 (logged with an error id) as every other route's.
        response = await unexpected_error_response(Request({**scope, "type": "http"}), exc)
        await response(scope, receive, send)

    async def _problem(self, scope: Scope, receive: Receive, send: Send, exc: ApprtError) -> None:
        request = Request({**scope, "type": "http"})
        response = problem_response(
            request,
            getattr(exc, "status_code", 400),
            title=exc.title,
            detail=str(exc),
            type_=problem_type(exc),
            problems=exc.problems,
            headers=getattr(exc, "headers", None),
        )
        await response(scope, receive, send)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: _SendTracker,
        slot: Slot,
        caller: Caller,
        org: str,
        incoming: _Incoming,
        target: str,
    ) -> int:
        method: str = scope["method"]
        socket = await self._ready(slot)
        headers = self._outgoing(slot, caller, org, incoming, scope, method, target)
        if incoming.chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        elif incoming.content_length is not None:
            headers.append((b"content-length", str(incoming.content_length).encode()))
        head_bytes = request_head(method, target, headers)
        timeout = slot.resources.request_timeout_s
        upstream = self._upstream(socket)
        loop = asyncio.get_running_loop()
        slot.in_flight += 1
        conn: Connection | None = None
        body_task: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(timeout) as deadline:
                conn, head, body_task = await self._exchange(
                    slot, upstream, head_bytes, method, receive, incoming
                )
                response_headers = _response_headers(head.headers, head.framing)
                if head.framing == "length":
                    response_headers.append((b"content-length", str(head.length).encode()))
                await send(
                    {
                        "type": "http.response.start",
                        "status": head.status,
                        "headers": response_headers,
                    }
                )
                if head.framing == "none":
                    await send({"type": "http.response.body", "body": b""})
                elif head.framing == "length" and head.length <= READ_SIZE:
                    try:
                        body = await conn.reader.readexactly(head.length)
                    except asyncio.IncompleteReadError:
                        raise BadGatewayError("the app's response body was cut short") from None
                    await send({"type": "http.response.body", "body": body})
                else:
                    async for chunk in iter_body(conn, head):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        deadline.reschedule(loop.time() + timeout)
                    await send({"type": "http.response.body", "body": b""})
            reusable = head.keep_alive
            if body_task is not None:
                reusable = (
                    reusable
                    and body_task.done()
                    and not body_task.cancelled()
                    and body_task.exception() is None
                )
                if not body_task.done():
                    body_task.cancel()
            upstream.release(conn, reusable)
            conn = None
            return head.status
        except TimeoutError:
            await self._body_error(body_task)
            self.supervisor.note_limit(
                slot,
                "request_timeout",
                f"{method} {scope['path']} got no answer within {timeout:g} s "
                "(request_timeout_s): 504",
                org=org,
            )
            raise AppTimeoutError(
                f"{slot.app_id} did not answer within {timeout:g} s (its request_timeout_s)",
                hint="the app must answer faster, or raise resources.request_timeout_s",
                title="app timed out",
            ) from None
        except UpstreamError as exc:
            await self._body_error(body_task)
            raise BadGatewayError(
                f"{slot.app_id} broke the connection: {exc}",
                hint="see `apprt logs` for what the app printed",
                title="bad response from the app",
            ) from None
        finally:
            slot.in_flight -= 1
            slot.note_request()
            if conn is not None:
                conn.close()
            if body_task is not None and not body_task.done():
                body_task.cancel()

    async def _exchange(
        self,
        slot: Slot,
        upstream: Upstream,
        head_bytes: bytes,
        method: str,
        receive: Receive,
        incoming: _Incoming,
    ) -> tuple[Connection, ResponseHead, asyncio.Task[None] | None]:
        """Send the request (the body streams in a task) and read the response head."""
        has_body = incoming.chunked or bool(incoming.content_length)
        for attempt in (0, 1):
            try:
                conn = await upstream.acquire()
            except UpstreamConnectError as exc:
                await self.supervisor.check_now(slot)
                raise BadGatewayError(
                    f"{slot.app_id} does not accept connections ({exc})",
                    hint="the app may be restarting; retry shortly",
                    title="app unreachable",
                ) from None
            conn.writer.write(head_bytes)
            body_task = None
            if has_body:
                body_task = asyncio.get_running_loop().create_task(
                    self._pump_body(receive, conn, incoming.chunked, incoming.content_length)
                )
            try:
                return conn, await read_head(conn, method), body_task
            except UpstreamClosedError:
                conn.close()
                if attempt == 0 and conn.reused and not has_body:
                    continue  # a stale keep-alive connection: once more, on a fresh one
                await self._body_error(body_task)
                raise
            except BaseException:
                conn.close()
                await self._body_error(body_task)
                raise
        raise AssertionError("unreachable")

    async def _body_error(self, body_task: asyncio.Task[None] | None) -> None:
        """Surface the body pump's own error (413, client gone) in preference."""
        if body_task is None:
            return
        await _settle(body_task)
        if not body_task.cancelled():
            exc = body_task.exception()
            if isinstance(exc, BodyTooLargeError | _ClientGone):
                raise exc

    async def _pump_body(
        self, receive: Receive, conn: Connection, chunked: bool, length: int | None
    ) -> None:
        """Stream the client's body to the app, with backpressure and the size limit."""
        limit = self.settings.gateway_max_body_bytes
        total = 0
        writer = conn.writer
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                body: bytes = message.get("body", b"")
                total += len(body)
                if total > limit:
                    raise BodyTooLargeError(
                        f"the request body is over the limit of {limit} bytes",
                        hint="send a smaller body",
                        title="request body too large",
                    )
                if body:
                    if chunked:
                        writer.write(b"%x\r\n" % len(body) + body + b"\r\n")
                    else:
                        writer.write(body)
                    await writer.drain()
                if not message.get("more_body", False):
                    break
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (BodyTooLargeError, _ClientGone):
            conn.close()  # the app sees the request cut; the reader fails at once
            raise
        except (ConnectionError, OSError):
            conn.close()  # the app closed early; its response (if any) is still read

    # -- WebSocket -------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        labels = ("-", "-")
        started = time.perf_counter()
        try:
            org, app_id, target = self._route(scope)
            incoming = _read_headers(scope, websocket=True)
            caller = await self._authenticate(incoming.token, org)
            slot = self._serving(org, app_id)
            labels = (org, app_id)
            self._limit(slot, org)
            socket = await self._ready(slot)
            headers = self._outgoing(slot, caller, org, incoming, scope, "GET", target)
            try:
                upstream = await unix_connect(
                    socket,
                    uri=f"ws://app{target}",
                    additional_headers=[
                        (n.decode("latin-1"), v.decode("latin-1")) for n, v in headers
                    ],
                    subprotocols=[Subprotocol(p) for p in incoming.subprotocols] or None,
                    open_timeout=slot.resources.request_timeout_s,
                    max_size=self.settings.gateway_max_body_bytes or None,
                    compression=None,
                    user_agent_header=None,
                    proxy=None,
                )
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                raise BadGatewayError(
                    f"{app_id} refused the WebSocket: {exc}",
                    hint="see `apprt logs` for what the app printed",
                    title="bad response from the app",
                ) from None
        except ApprtError as exc:
            if self.metrics is not None:
                self.metrics.request(
                    *labels, getattr(exc, "status_code", 400), time.perf_counter() - started
                )
            await self._deny_websocket(scope, send, exc)
            return
        if self.metrics is not None:
            self.metrics.request(*labels, 101, time.perf_counter() - started)
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        slot.in_flight += 1
        try:
            await _relay(receive, send, upstream)
        finally:
            slot.in_flight -= 1
            slot.note_request()

    async def _deny_websocket(self, scope: Scope, send: Send, exc: ApprtError) -> None:
        status = getattr(exc, "status_code", 400)
        if "websocket.http.response" in scope.get("extensions", {}):
            response = problem_response(
                Request({**scope, "type": "http"}),
                status,
                title=exc.title,
                detail=str(exc),
                type_=problem_type(exc),
                problems=exc.problems,
                headers=getattr(exc, "headers", None),
            )
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": response.body})
            return
        code = {401: 1008, 404: 1008, 429: 1013, 503: 1013}.get(status, 1011)
        await send({"type": "websocket.close", "code": code, "reason": exc.title[:100]})


class _SendTracker:
    """``send`` that remembers whether the response has started."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


async def _settle(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(BaseException):
        await task


def _close_code(code: int | None) -> int:
    if code is None or code in (1005, 1006, 1015) or not (1000 <= code < 5000):
        return 1000 if code in (None, 1005) else 1011
    return code


async def _relay(receive: Receive, send: Send, upstream: ClientConnection) -> None:
    async def client_to_app() -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                data = message.get("bytes")
                await upstream.send(data if data is not None else message.get("text", ""))
            elif kind == "websocket.disconnect":
                await upstream.close(_close_code(message.get("code", 1000)))
                return

    async def app_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": bytes(data)})
        except ConnectionClosed:
            pass
        with contextlib.suppress(Exception):
            await send(
                {
                    "type": "websocket.close",
                    "code": _close_code(upstream.close_code),
                    "reason": (upstream.close_reason or "")[:120],
                }
            )

    tasks = [asyncio.ensure_future(client_to_app()), asyncio.ensure_future(app_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await upstream.close()
