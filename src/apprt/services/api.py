"""The platform API: what each instance reaches on its ``platform.sock``.

For every running instance the platform listens on ``<run_dir>/platform.sock`` (the
sandbox sees it as ``$APPRT_PLATFORM_SOCKET``; it is, with ingress and egress, its only
door). The socket identifies the caller: it was made for one instance, so the platform
knows the app, its version, and the organization it serves (isolated tenancy) without
trusting anything the app says. A shared-tenancy instance serves several
organizations: each call forwards the signed identity of the request it handles
(``x-apprt-caller``, see :mod:`apprt.sdk.identity`), which is checked with the
instance's key, its age bounded, and its organization required to have the app
installed. So an app can act only for itself, and a shared app only for an
organization that actually sent it a request.

Every call then goes through, in order:

1. **rate limit** per app and organization (token bucket, ``services_rate_per_s`` and
   ``services_rate_burst``): 429 with ``Retry-After``;
2. **permissions**: the permission the operation needs must be covered by the app's
   manifest (``app.toml`` in its code directory) *and* by the grants the org admin
   gave (the runtime instance's ``grants``): 403 otherwise, saying which is missing;
3. the operation, in one database transaction with its **audit** row; a refusal is
   audited too (rate-limited refusals at most once a second per app+org, with a count).

Wire protocol (HTTP/1.1, JSON): ``POST /v1/<operation>`` with a JSON object; answers
are JSON objects or ``application/problem+json`` (``type``, ``title``, ``status``,
``detail``, ``problems``; plus ``current_version`` for conflicts, ``retry_after`` for
429). Operations::

    state/get        {key}                          -> {key, found, value, version}
    state/put        {key, value, if_version?}       -> {key, version}
    state/delete     {key, if_version?}              -> {key, deleted}
    state/increment  {key, by?}                      -> {key, value, version}
    state/list       {prefix?, after?, limit?}       -> {items: [{key, value, version}], next}
    state/usage      {}                              -> {bytes, keys, max_bytes, max_keys}
    whoami           {}                              -> {app_id, version, instance_id, org, ...}

Integration with the runtime: :meth:`PlatformApi.start` registers a start listener
(the socket is created in the run directory *before* the sandbox starts, so the app can
call the platform during its own start-up) and a stop listener (closed and removed when
the sandbox stops or fails to start) on the :class:`~apprt.runtime.supervisor.Supervisor`,
attaches to sandboxes already running (re-adopted after a platform restart), and
reconciles every few seconds in case a start raced with that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.engine import session_scope
from apprt.errors import ManifestError
from apprt.manifest import (
    InvalidPermission,
    Permission,
    Resources,
    Tenancy,
    load_manifest,
    parse_permission,
)
from apprt.runtime.drivers.base import TaskHandle
from apprt.sdk import identity as sdk_identity
from apprt.services import audit
from apprt.services import state as state_service
from apprt.services._http import Request, Response, UnixHTTPServer
from apprt.services.errors import (
    IdentityRejectedError,
    InstanceGoneError,
    InternalServiceError,
    InvalidStateRequestError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceError,
    UnknownOperationError,
)
from apprt.settings import Settings

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

PLATFORM_SOCKET = "platform.sock"
#: How often running sandboxes are checked for a missing platform socket.
RECONCILE_INTERVAL_S = 2.0
#: An endpoint no live sandbox uses is closed after this long (a start takes less).
STALE_AFTER_S = 120.0
#: How old a forwarded identity may be (the gateway signed it for one request).
IDENTITY_MAX_AGE_S = sdk_identity.DEFAULT_MAX_AGE_S


# -- what the API needs from the runtime (the supervisor's Slot and Supervisor) -----


class InstanceLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def app_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def org(self) -> str | None: ...
    @property
    def tenancy(self) -> Tenancy: ...
    @property
    def identity_key(self) -> bytes: ...
    @property
    def grants(self) -> tuple[str, ...]: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def code_dir(self) -> Path: ...
    @property
    def orgs(self) -> set[str]: ...
    @property
    def handle(self) -> TaskHandle | None: ...


class RuntimeLike(Protocol):
    @property
    def slots(self) -> dict[str, Any]: ...
    @property
    def driver(self) -> Any: ...
    def add_stop_listener(self, callback: Callable[[Path], None]) -> None: ...
    def add_start_listener(self, callback: Callable[[Any, Path], None]) -> None: ...


# -- rate limit -----------------------------------------------------------------------


class RateLimiter:
    """A token bucket per key: ``rate`` calls per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, stamp
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str], now: float | None = None) -> float:
        """0 if a call may go now, else the seconds until one may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > 10_000:  # forget buckets that are full again
                self._buckets = {
                    k: v
                    for k, v in self._buckets.items()
                    if v[0] + (now - v[1]) * self.rate < self.burst
                }
            return (1.0 - tokens) / self.rate


# -- operations ---------------------------------------------------------------------


@dataclass(frozen=True)
class CallContext:
    instance: InstanceLike
    org: str
    user: str
    quota: state_service.Quota
    permissions: tuple[Permission, ...]

    @property
    def app_id(self) -> str:
        return self.instance.app_id


@dataclass(frozen=True)
class Operation:
    name: str  # as audited: "state.put"
    permission: Permission | None
    run: Callable[[Session, CallContext, dict[str, Any]], dict[str, Any]]
    target: Callable[[dict[str, Any]], str] = lambda p: ""


def _str(payload: dict[str, Any], name: str, *, required: bool = True) -> Any:
    if name not in payload:
        if required:
            raise InvalidStateRequestError.one(
                f"{name} is missing", location=name, hint=f"send {{{name!r}: ...}}"
            )
        return None
    return payload[name]


def _op_get(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    key = _str(p, "key")
    entry = state_service.get(session, ctx.org, ctx.app_id, key)
    if entry is None:
        return {"key": key, "found": False, "value": None, "version": 0}
    return {"key": key, "found": True, "value": entry.value, "version": entry.version}


def _op_put(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    entry = state_service.put(
        session,
        ctx.org,
        ctx.app_id,
        _str(p, "key"),
        _str(p, "value"),
        quota=ctx.quota,
        if_version=_str(p, "if_version", required=False),
    )
    return {"key": entry.key, "version": entry.version}


def _op_delete(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    key = _str(p, "key")
    deleted = state_service.delete(
        session, ctx.org, ctx.app_id, key, if_version=_str(p, "if_version", required=False)
    )
    return {"key": key, "deleted": deleted}


def _op_increment(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    entry = state_service.increment(
        session, ctx.org, ctx.app_id, _str(p, "key"), p.get("by", 1), quota=ctx.quota
    )
    return {"key": entry.key, "value": entry.value, "version": entry.version}


def _op_list(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    prefix = p.get("prefix") or ""
    if not isinstance(prefix, str):
        raise InvalidStateRequestError.one("prefix must be a string", location="prefix")
    page = state_service.list_entries(
        session, ctx.org, ctx.app_id, prefix, after=p.get("after"), limit=p.get("limit", 100)
    )
    return {"items": [e.as_dict() for e in page.items], "next": page.next}


def _op_usage(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    return state_service.usage(session, ctx.org, ctx.app_id, ctx.quota).as_dict()


def _op_whoami(session: Session, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
    instance = ctx.instance
    return {
        "app_id": instance.app_id,
        "version": instance.version,
        "instance_id": instance.id,
        "tenancy": instance.tenancy.value,
        "org": ctx.org,
        "user": ctx.user,
        "permissions": [str(p) for p in ctx.permissions],
    }


def _target(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda p: str(p.get(name) or "")


STATE = Permission("state")

OPERATIONS: dict[str, Operation] = {
    "/v1/state/get": Operation("state.get", STATE, _op_get, _target("key")),
    "/v1/state/put": Operation("state.put", STATE, _op_put, _target("key")),
    "/v1/state/delete": Operation("state.delete", STATE, _op_delete, _target("key")),
    "/v1/state/increment": Operation("state.increment", STATE, _op_increment, _target("key")),
    "/v1/state/list": Operation("state.list", STATE, _op_list, _target("prefix")),
    "/v1/state/usage": Operation("state.usage", STATE, _op_usage),
    "/v1/whoami": Operation("whoami", None, _op_whoami),
}


# -- responses ----------------------------------------------------------------------


def _json(status: int, data: dict[str, Any]) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body)


def _problem(exc: ServiceError, path: str) -> Response:
    from apprt.server import problem_type

    body = {
        "type": problem_type(exc),
        "title": exc.title,
        "status": exc.status_code,
        "detail": str(exc),
        "instance": path,
        "problems": [p.as_dict() for p in exc.problems],
        **exc.extra,
    }
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(
        exc.status_code, data, content_type="application/problem+json", headers=exc.headers
    )


# -- the server ---------------------------------------------------------------------


@dataclass
class _Endpoint:
    instance_id: str
    run_dir: Path
    path: Path
    listener: socket.socket
    inode: int
    attached_at: float = field(default_factory=time.monotonic)
    server: UnixHTTPServer | None = None
    closed: bool = False


class PlatformApi:
    """Serves the platform API on every live instance's ``platform.sock``."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        runtime: RuntimeLike,
        *,
        workers: int = 8,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.runtime = runtime
        self.limiter = RateLimiter(settings.services_rate_per_s, settings.services_rate_burst)
        self.identity_max_age_s = IDENTITY_MAX_AGE_S
        self._endpoints: dict[Path, _Endpoint] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apprt-services")
        self._declared: dict[tuple[str, str], tuple[Permission, ...]] = {}
        self._limited: dict[tuple[str, str], tuple[float, int]] = {}  # last audit, suppressed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciler: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.runtime.add_start_listener(self.attach)
        self.runtime.add_stop_listener(self.detach_ingress)
        await self._io(self._prune)  # now, before other components start writing
        await self.reconcile()
        self._reconciler = self._loop.create_task(self._reconcile_loop(), name="apprt-services")

    async def aclose(self) -> None:
        self._closed = True
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        with self._lock:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for endpoint in endpoints:
            await self._close(endpoint)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._pool.shutdown(wait=True)

    @property
    def endpoints(self) -> dict[Path, str]:
        """Run directory -> instance id, for every socket being served."""
        with self._lock:
            return {d: e.instance_id for d, e in self._endpoints.items()}

    # -- attaching sockets (called from any thread) ----------------------------------

    def attach(self, instance: Any, run_dir: Path) -> None:
        """Listen on ``<run_dir>/platform.sock`` for ``instance`` (idempotent)."""
        run_dir = Path(run_dir)
        with self._lock:
            if self._closed or run_dir in self._endpoints:
                return
            path = run_dir / PLATFORM_SOCKET
            run_dir.mkdir(parents=True, exist_ok=True)
            # the sandbox's user must be able to reach the socket by its path; the run
            # directories' root is private to the platform (0700), so this opens nothing
            run_dir.chmod(0o711)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()  # a previous platform process's socket
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(path))
                path.chmod(0o666)  # connectable by the sandbox's uid
                listener.listen(128)
            except OSError:
                listener.close()
                raise
            endpoint = _Endpoint(
                instance_id=str(instance.id),
                run_dir=run_dir,
                path=path,
                listener=listener,
                inode=path.stat().st_ino,
            )
            self._endpoints[run_dir] = endpoint
        log.debug("platform_api.attached", instance=endpoint.instance_id, socket=str(path))
        self._on_loop(self._serve(endpoint))

    def detach_ingress(self, ingress_socket: Path) -> None:
        """The supervisor's stop listener: the sandbox using this run directory is gone."""
        self.detach(Path(ingress_socket).parent)

    def detach(self, run_dir: Path) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(Path(run_dir), None)
        if endpoint is not None:
            self._on_loop(self._close(endpoint))

    def _on_loop(self, coro: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            return

        def spawn() -> None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            spawn()
        else:
            try:
                loop.call_soon_threadsafe(spawn)
            except RuntimeError:  # the loop is closing
                coro.close()

    async def _serve(self, endpoint: _Endpoint) -> None:
        if endpoint.closed:
            return
        server = UnixHTTPServer(
            endpoint.listener,
            lambda request: self.handle(endpoint, request),
            max_body=2 * state_service.MIB,
        )
        endpoint.server = server
        try:
            await server.start()
        except OSError:
            log.exception("platform_api.serve_failed", instance=endpoint.instance_id)

    async def _close(self, endpoint: _Endpoint) -> None:
        endpoint.closed = True
        if endpoint.server is not None:
            await endpoint.server.aclose()
        else:
            endpoint.listener.close()
        with contextlib.suppress(OSError):
            if endpoint.path.stat().st_ino == endpoint.inode:
                endpoint.path.unlink()
        with contextlib.suppress(OSError):
            endpoint.run_dir.rmdir()  # only if empty: the driver's files are its own
        log.debug("platform_api.detached", instance=endpoint.instance_id)

    async def reconcile(self) -> None:
        """Attach to every running sandbox without a socket; drop sockets nobody uses."""
        live: dict[Path, Any] = {}
        for instance in list(self.runtime.slots.values()):
            handle = instance.handle
            if handle is not None and handle.state.get("run_dir"):
                live[Path(handle.state["run_dir"])] = instance
        with self._lock:
            attached = dict(self._endpoints)
        for run_dir, instance in live.items():
            if run_dir not in attached:
                try:
                    await self._io(self.attach, instance, run_dir)
                except OSError:
                    log.exception("platform_api.attach_failed", instance=instance.id)
        now = time.monotonic()
        for run_dir, endpoint in attached.items():
            if run_dir not in live and now - endpoint.attached_at > STALE_AFTER_S:
                self.detach(run_dir)

    async def _reconcile_loop(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL_S)
            try:
                await self.reconcile()
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    await self._io(self._prune)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("platform_api.reconcile_failed")

    def _prune(self) -> None:
        with session_scope(self.sessions) as session:
            removed = audit.prune(session, older_than_days=self.settings.audit_retention_days)
        if removed:
            log.info("platform_api.audit_pruned", rows=removed)

    async def _io(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- one call ------------------------------------------------------------------

    async def handle(self, endpoint: _Endpoint, request: Request) -> Response:
        instance = self.runtime.slots.get(endpoint.instance_id)
        op = OPERATIONS.get(request.path)
        name = op.name if op is not None else "unknown"
        org = (instance.org or "") if instance is not None else ""
        user = ""
        payload: dict[str, Any] = {}
        try:
            if instance is None:
                raise InstanceGoneError.one(
                    f"instance {endpoint.instance_id} was removed",
                    hint="this sandbox is being stopped; nothing to do",
                )
            self._check_peer(instance, endpoint, request)
            try:  # first, so that refusals are audited with the key they were for
                payload, bad_body = _payload(request), None
            except ServiceError as exc:
                bad_body = exc
            try:
                org, user = self._caller(instance, request)
            except IdentityRejectedError as exc:
                # refusals count toward the limit too (each is an audit row)
                self._limit(instance.app_id, exc.org or "")
                raise
            self._limit(instance.app_id, org)
            if op is None or request.method != "POST":
                raise UnknownOperationError.one(
                    f"no operation {request.method} {request.path[:100]}",
                    location="path",
                    hint="use POST /v1/state/get|put|delete|increment|list|usage or /v1/whoami "
                    "(the apprt.sdk does)",
                )
            if bad_body is not None:
                raise bad_body
            result = await self._io(self._execute, instance, op, org, user, payload)
            return _json(200, result)
        except ServiceError as exc:
            if exc.org is not None:
                org = exc.org
            detail = self._audit_detail(exc, instance.app_id, org) if instance else None
            if instance is not None and detail is not None:
                await self._io(
                    self._audit, instance, op, name, org, user, exc.outcome, payload, detail
                )
            return _problem(exc, request.path)
        except Exception:
            log.exception("platform_api.call_failed", instance=endpoint.instance_id, op=name)
            if instance is not None:
                with contextlib.suppress(Exception):
                    await self._io(
                        self._audit, instance, op, name, org, user, "error", payload, "internal"
                    )
            error = InternalServiceError.one(
                "the platform failed to handle this call", hint="retry; the platform log has more"
            )
            return _problem(error, request.path)

    def _check_peer(self, instance: InstanceLike, endpoint: _Endpoint, request: Request) -> None:
        """Defense in depth: the connection comes from this instance's sandbox (or the
        platform's own user)."""
        uid = request.peer_uid
        if uid is None or uid == os.getuid():
            return
        allowed: set[int] = set()
        handle = instance.handle
        if handle is not None and handle.state.get("uid") is not None:
            allowed.add(int(handle.state["uid"]))
        host_uid = getattr(self.runtime.driver, "host_uid", None)
        if callable(host_uid):
            with contextlib.suppress(Exception):
                allowed.add(int(host_uid(instance.id)))
        if uid not in allowed:
            raise PermissionDeniedError.one(
                f"a process of uid {uid} is not {instance.app_id}'s sandbox",
                location="platform.sock",
                hint="only the instance's own sandbox may use its platform socket",
            )

    def _caller(self, instance: InstanceLike, request: Request) -> tuple[str, str]:
        """The organization (and user) the call acts for."""
        raw = request.headers.get(sdk_identity.CALLER_HEADER)
        shared = instance.tenancy is Tenancy.shared
        if raw is None:
            if shared or not instance.org:
                raise IdentityRejectedError.one(
                    f"{instance.app_id} serves several organizations (shared tenancy) and did "
                    "not say which one this call is for",
                    location=sdk_identity.CALLER_HEADER,
                    hint="call identity.current(request) before calling the platform while "
                    "handling a request, or pass caller=identity.current(request)",
                )
            return instance.org, ""
        claimed = ""
        try:
            proof = sdk_identity.Proof.decode(raw)
            claimed = dict(proof.headers).get(sdk_identity.ORG, "")
            who = sdk_identity.verify_identity(
                dict(proof.headers),
                instance.identity_key,
                method=proof.method,
                target=proof.target,
                max_age_s=self.identity_max_age_s,
            )
        except sdk_identity.IdentityError as exc:
            error = IdentityRejectedError.one(
                f"the caller identity forwarded by {instance.app_id}"
                + (f" for organization {claimed!r}" if claimed else "")
                + f" is not genuine: {exc}",
                location=sdk_identity.CALLER_HEADER,
                hint="forward the identity of the request being handled, unchanged "
                f"(identity.current(request)), within {self.identity_max_age_s:g} s",
            )
            error.org = claimed[:64] if claimed else (instance.org or "")
            raise error from None
        if not shared and who.org != instance.org:
            error = IdentityRejectedError.one(
                f"the forwarded identity is for organization {who.org!r}, but this instance "
                f"serves {instance.org!r}",
                location=sdk_identity.CALLER_HEADER,
                hint="an isolated app acts only for its own organization",
            )
            error.org = who.org
            raise error
        if shared and who.org not in instance.orgs:
            error = IdentityRejectedError.one(
                f"{instance.app_id} is not installed for organization {who.org!r}",
                location=sdk_identity.CALLER_HEADER,
                hint="the organization must install the app first",
            )
            error.org = who.org
            raise error
        return who.org, who.user

    def _limit(self, app_id: str, org: str) -> None:
        wait = self.limiter.take((app_id, org))
        if wait:
            retry = max(1, int(wait + 0.999))
            raise RateLimitedError.one(
                f"{app_id} made more than {self.limiter.rate:g} platform calls per second "
                f"for {org or 'its organization'}",
                location="platform.sock",
                hint=f"retry after {retry} s; batch work (e.g. list instead of many gets)",
                extra={"retry_after": retry},
                headers={"Retry-After": str(retry)},
            )

    def _audit_detail(self, exc: ServiceError, app_id: str, org: str) -> str | None:
        """The audit detail of a refusal, None to skip its row: every refusal is audited,
        rate-limited ones at most once a second per app+org (with the count skipped)."""
        reason = exc.problems[0].reason if exc.problems else exc.title
        if not isinstance(exc, RateLimitedError):
            return reason
        key = (app_id, org)
        now = time.monotonic()
        last, suppressed = self._limited.get(key, (0.0, 0))
        if now - last < 1.0:
            self._limited[key] = (last, suppressed + 1)
            return None
        self._limited[key] = (now, 0)
        if len(self._limited) > 10_000:
            self._limited = {k: v for k, v in self._limited.items() if now - v[0] < 60}
        return f"{reason}; {suppressed} more refused since the last row" if suppressed else reason

    # -- in a worker thread ------------------------------------------------------------

    def grants(self, session: Session, instance: InstanceLike, org: str) -> tuple[str, ...]:
        """What the org's admin granted the app: the organization's active installation
        (per organization, which matters for shared-tenancy apps), else the runtime
        instance's grants (apps deployed to the runtime directly, or being installed)."""
        try:
            from apprt.install.services import active_installation
        except ImportError:  # pragma: no cover - the install domain is part of the platform
            return instance.grants
        row = active_installation(session, org, instance.app_id) if org else None
        return tuple(row.grants) if row is not None else instance.grants

    def permissions(self, instance: InstanceLike, grants: Iterable[str]) -> tuple[Permission, ...]:
        """The effective permissions: declared in the manifest ∩ granted by the admin."""
        declared = self._manifest_permissions(instance)
        granted = _parse_all(grants)
        effective = [d for d in declared if any(g.covers(d) for g in granted)]
        # a grant narrower than what was declared (tools:call:crm.read within crm.*)
        effective += [
            g for g in granted if g not in effective and any(d.covers(g) for d in declared)
        ]
        return tuple(effective)

    def _manifest_permissions(self, instance: InstanceLike) -> tuple[Permission, ...]:
        key = (str(instance.code_dir), instance.version)
        found = self._declared.get(key)
        if found is None:
            try:
                manifest = load_manifest(instance.code_dir)
                found = tuple(manifest.parsed_permissions)
            except (ManifestError, OSError):
                log.warning(
                    "platform_api.manifest_unreadable",
                    app=instance.app_id,
                    code_dir=str(instance.code_dir),
                )
                found = ()
            self._declared[key] = found
        return found

    def authorize(
        self, instance: InstanceLike, needed: Permission, org: str, grants: Iterable[str]
    ) -> None:
        """Refuse unless the manifest declares ``needed`` and the org admin granted it."""
        declared = self._manifest_permissions(instance)
        granted = _parse_all(grants)
        if not any(d.covers(needed) for d in declared):
            raise PermissionDeniedError.one(
                f"{instance.app_id} {instance.version} does not declare the {needed} permission",
                location="app.toml:permissions",
                hint=f'add "{needed}" to permissions in app.toml and publish a new version; '
                "the organization's admin then grants it",
            )
        if not any(g.covers(needed) for g in granted):
            raise PermissionDeniedError.one(
                f"the admin of {org or 'the organization'} has not granted {needed} to "
                f"{instance.app_id}",
                location="grants",
                hint="an org admin grants it by accepting the app's permissions (update or "
                "reinstall it with the permission accepted)",
            )

    def _execute(
        self,
        instance: InstanceLike,
        op: Operation,
        org: str,
        user: str,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        with session_scope(self.sessions) as session:
            grants = self.grants(session, instance, org)
            if op.permission is not None:
                self.authorize(instance, op.permission, org, grants)
            ctx = CallContext(
                instance=instance,
                org=org,
                user=user,
                quota=state_service.Quota.for_storage_mb(
                    instance.resources.storage_mb, self.settings
                ),
                permissions=self.permissions(instance, grants) if op.permission is None else (),
            )
            result = op.run(session, ctx, payload)
            audit.record(
                session,
                org=org,
                app_id=instance.app_id,
                instance_id=instance.id,
                user=user,
                operation=op.name,
                permission=str(op.permission or ""),
                outcome="ok",
                target=_safe_target(op, payload),
                detail=_detail(op, result),
            )
        return result

    def _audit(
        self,
        instance: InstanceLike,
        op: Operation | None,
        name: str,
        org: str,
        user: str,
        outcome: str,
        payload: dict[str, Any],
        detail: str,
    ) -> None:
        with session_scope(self.sessions) as session:
            audit.record(
                session,
                org=org,
                app_id=instance.app_id,
                instance_id=instance.id,
                user=user,
                operation=name,
                permission=str(op.permission or "") if op is not None else "",
                outcome=outcome,
                target=_safe_target(op, payload) if op is not None else "",
                detail=detail,
            )


def _parse_all(texts: Iterable[str]) -> tuple[Permission, ...]:
    out = []
    for text in texts:
        try:
            out.append(parse_permission(text))
        except InvalidPermission:
            log.warning("platform_api.invalid_grant", grant=text)
    return tuple(out)


def _payload(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):
        raise InvalidStateRequestError.one(
            "the body is not JSON", location="body", hint="send a JSON object"
        ) from None
    if not isinstance(data, dict):
        raise InvalidStateRequestError.one(
            "the body is not a JSON object", location="body", hint="send a JSON object"
        )
    return data


def _safe_target(op: Operation | None, payload: dict[str, Any]) -> str:
    if op is None:
        return ""
    try:
        return op.target(payload)[:300]
    except Exception:
        return ""


def _detail(op: Operation, result: dict[str, Any]) -> str:
    if "version" in result and op.name != "whoami":
        return f"version {result['version']}"
    if op.name == "state.delete":
        return "deleted" if result.get("deleted") else "absent"
    if op.name == "state.get":
        return "found" if result.get("found") else "absent"
    if op.name == "state.list":
        return f"{len(result.get('items', []))} entries"
    return ""


__all__ = ["OPERATIONS", "PLATFORM_SOCKET", "PlatformApi", "RateLimiter"]
