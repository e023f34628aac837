"""The supervisor: makes the instances the database describes run, and keeps them so.

Desired state lives in the database (:mod:`apprt.runtime.models`); the supervisor
holds a :class:`Slot` per instance in memory (what the gateway's hot path reads, with
no database access per request) and drives the sandbox :class:`Driver`.

API for the install engine (all coroutines, all raising
:class:`~apprt.errors.ApprtError` subclasses with problems)::

    spec = DeploySpec.from_manifest(manifest, code_dir, org="acme", env_dir=env)
    info = await supervisor.deploy(spec)              # Installed (+ route), nothing runs
    info = await supervisor.activate("acme", app_id)  # Loading -> Running (or Failed)
    info = await supervisor.update("acme", app_id, new_spec)  # Running -> Updating -> Running
    info = await supervisor.suspend("acme", app_id, reason="maintenance")
    info = await supervisor.restart("acme", app_id)   # Failed -> Loading -> Running
    await supervisor.uninstall("acme", app_id, purge=False)

A shared-tenancy app has one instance for every organization: ``deploy`` with
``tenancy=shared`` for a second organization only adds its route to the same instance
(``uninstall`` removes the route, and the instance with its last route).

What it does on its own (one watch loop, every ``runtime_watch_interval_s``):

* **crashes**: an instance whose sandbox exited is restarted after an exponential
  backoff (``restart_backoff_s`` doubling up to ``restart_backoff_max_s``); the
  ``crash_loop_count``-th crash within ``crash_loop_window_s`` ends in Failed, with the
  end of its logs kept in the database;
* **hibernation**: a Running instance with no request in flight and none for its idle
  timeout (policy per app and org, else ``idle_timeout_s``) is suspended: its process
  stops, its data stays. The next request (:meth:`Supervisor.ensure_running`) wakes
  it; concurrent requests wait on the same wake;
* **logs**: each instance's log file is rotated past ``instance_log_max_bytes``;
* **limits**: the driver's limit counters (OOM kills, refused forks, CPU throttling, a
  full data volume) are polled and their hits recorded (:mod:`apprt.runtime.limits`),
  like the gateway's timeouts and the egress proxy's refusals (:meth:`note_limit`).

Deploying (or updating to) an untrusted app whose resources need a limit the driver
cannot enforce here (``driver.capabilities()``) is refused, unless the operator allowed
it (``driver.allow_untrusted``); :meth:`Supervisor.driver_info` says what it enforces.

On start, :meth:`Supervisor.start` re-adopts the sandboxes a previous platform process
left running (``driver.recover`` with the persisted handles): none is restarted.
On stop, sandboxes are left running for the next platform process to re-adopt, unless
``runtime_stop_on_shutdown`` is set (then they are suspended).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import structlog
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.errors import ApprtError, Problem
from apprt.manifest import Manifest, Resources, Tenancy
from apprt.runtime.drivers.base import (
    Driver,
    ExitResult,
    TaskConfig,
    TaskHandle,
    TaskStats,
    missing_capabilities,
)
from apprt.runtime.lifecycle import LIVE_STATES, State, check_transition, record_transition
from apprt.runtime.limits import POLL_INTERVAL_S, LimitEventInfo, LimitRecorder
from apprt.runtime.logs import InstanceLog
from apprt.runtime.models import IdlePolicy, Instance, Route, Transition
from apprt.settings import Settings

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

#: Longest Unix socket path (``sun_path`` is 108 bytes with the terminating NUL).
_SUN_PATH_MAX = 107
#: What a run directory adds below its root: ``/<instance id>.<6 hex>/ingress.sock``.
_RUN_SUFFIX_LEN = len("/i0123456789ab-abcdef/platform.sock")
#: How much of the logs a Failed instance keeps in the database.
FAILURE_LOG_BYTES = 16 * 1024
#: How often last-request times are written to the database (they live in memory).
_FLUSH_INTERVAL_S = 5.0


# -- errors -------------------------------------------------------------------------


class InstanceNotFoundError(ApprtError):
    status_code: ClassVar[int] = 404

    def __init__(self, org: str | None, app_id: str) -> None:
        where = f"{org}/{app_id}" if org else app_id
        super().__init__(
            [
                Problem(
                    reason=f"no app {app_id} is deployed for organization {org}"
                    if org
                    else f"no instance {app_id}",
                    location=where,
                    hint="install the app for this organization first (list them with "
                    "`apprt runtime list`)",
                )
            ],
            title="app not deployed",
        )


class AlreadyDeployedError(ApprtError):
    status_code: ClassVar[int] = 409


class InvalidDeploySpecError(ApprtError):
    status_code: ClassVar[int] = 400


class HookFailedError(ApprtError):
    """An app's lifecycle hook raised, or did not answer in time."""

    status_code: ClassVar[int] = 502


class StartFailedError(ApprtError):
    """The sandbox did not start, or the instance is Failed (HTTP 503)."""

    status_code: ClassVar[int] = 503


class AppUnavailableError(ApprtError):
    """The instance cannot serve now (Failed, or still starting); HTTP 503."""

    status_code: ClassVar[int] = 503

    def __init__(self, problems: list[Problem], *, retry_after: int | None = None) -> None:
        super().__init__(problems, title="app unavailable")
        self.headers = {"Retry-After": str(retry_after)} if retry_after else {}


# -- what callers pass and get ------------------------------------------------------


@dataclass(frozen=True)
class DeploySpec:
    """Everything needed to place one app version on this node."""

    app_id: str
    version: str
    code_dir: Path  # the unpacked package (backend/ inside)
    entry: str  # ASGI "module:attr"
    org: str | None  # the organization installing it (None: a shared deployment alone)
    tenancy: Tenancy = Tenancy.isolated
    env_dir: Path | None = None  # the version's site-packages, None without requirements
    resources: Resources = field(default_factory=Resources)
    trusted: bool = False
    grants: tuple[str, ...] = ()
    idle_timeout_s: float | None = None  # None: the idle policies decide

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        code_dir: Path,
        *,
        org: str | None,
        env_dir: Path | None = None,
        trusted: bool = False,
        grants: Sequence[str] = (),
        idle_timeout_s: float | None = None,
    ) -> DeploySpec:
        if manifest.backend is None:
            raise InvalidDeploySpecError.single(
                f"{manifest.id} has no backend to run",
                file="app.toml",
                location="backend",
                hint="frontend-only apps need no instance; do not deploy them to the runtime",
            )
        return cls(
            app_id=manifest.id,
            version=str(manifest.version),
            code_dir=code_dir,
            entry=manifest.backend.entry,
            org=org,
            tenancy=manifest.tenancy,
            env_dir=env_dir,
            resources=manifest.resources,
            trusted=trusted,
            grants=tuple(grants),
            idle_timeout_s=idle_timeout_s,
        )

    def problems(self) -> list[Problem]:
        problems = []
        if self.tenancy is Tenancy.isolated and not self.org:
            problems.append(
                Problem(
                    "an isolated app is deployed for one organization",
                    location="org",
                    hint="pass the organization installing it",
                )
            )
        if not (self.code_dir / "backend").is_dir():
            problems.append(
                Problem(
                    f"{self.code_dir} has no backend/ directory",
                    location="code_dir",
                    hint="pass the directory the package was extracted to",
                )
            )
        if self.env_dir is not None and not self.env_dir.is_dir():
            problems.append(
                Problem(
                    f"{self.env_dir} is not a directory",
                    location="env_dir",
                    hint="pass the version's environment, or None without requirements",
                )
            )
        if ":" not in self.entry:
            problems.append(
                Problem(
                    f"entry {self.entry!r} is not module:attribute",
                    location="backend.entry",
                    hint="use the manifest's backend.entry",
                )
            )
        return problems


class InstanceInfo(BaseModel):
    """An instance as the API and the install engine see it."""

    id: str
    org: str | None
    app_id: str
    version: str
    tenancy: str
    driver: str
    state: State
    pid: int | None
    trusted: bool
    orgs: list[str]
    restart_count: int
    idle_timeout_s: float
    in_flight: int
    last_exit: dict[str, Any] | None
    last_request_at: datetime | None
    started_at: datetime | None
    failure_log: str | None
    resources: dict[str, Any]


class TransitionInfo(BaseModel):
    from_state: State | None  # None: the instance's creation
    to_state: State
    reason: str
    at: datetime


@dataclass(frozen=True)
class InstanceSample:
    """One instance as the metrics collector reads it."""

    id: str
    org: str
    app_id: str
    version: str
    state: State
    stats: TaskStats | None
    in_flight: int


# -- in-memory state ----------------------------------------------------------------


class Slot:
    """One instance in memory: what the gateway reads per request, and its lock."""

    def __init__(self, row: Instance, log_: InstanceLog, key: bytes) -> None:
        self.id = row.id
        self.org = row.org
        self.app_id = row.app_id
        self.tenancy = Tenancy(row.tenancy)
        self.driver = row.driver
        self.data_dir = Path(row.data_dir)
        self.log = log_
        self.identity_key = key
        self.apply_spec(row)
        self.state = State(row.state)
        self._handle: TaskHandle | None = None
        self.ingress: str | None = None  # the handle's ingress socket path, cached
        self.handle = TaskHandle(**row.handle) if row.handle is not None else None
        self.restart_count = row.restart_count
        self.recent_crashes: list[float] = list(row.recent_crashes or [])
        self.last_exit = row.last_exit
        self.failure_log = row.failure_log
        self.started_at = row.started_at
        self.orgs: set[str] = set()
        # hot path (gateway)
        self.in_flight = 0  # requests being proxied
        self.waiting = 0  # requests waiting for a wake
        wall = row.last_request_at.timestamp() if row.last_request_at else time.time()
        self.last_request = time.monotonic() - max(0.0, time.time() - wall)
        self.request_seen = False  # a request since the last flush to the database
        # coordination
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None  # wake or restart in progress
        self.wake_started: float | None = None
        self.wake_kind = ""

    def apply_spec(self, row: Instance) -> None:
        self.version = row.version
        self.entry = row.entry
        self.code_dir = Path(row.code_dir)
        self.env_dir = Path(row.env_dir) if row.env_dir else None
        self.resources = Resources.model_validate(row.resources)
        self.trusted = row.trusted
        self.grants: tuple[str, ...] = tuple(row.grants or ())
        self.idle_timeout_s = row.idle_timeout_s

    @property
    def handle(self) -> TaskHandle | None:
        """The live sandbox, or None."""
        return self._handle

    @handle.setter
    def handle(self, value: TaskHandle | None) -> None:
        self._handle = value
        self.ingress = str(value.ingress_socket) if value is not None else None

    @property
    def serving(self) -> bool:
        """Requests can be proxied right now (Running, or Updating on the old version)."""
        return self.handle is not None and self.state in (State.RUNNING, State.UPDATING)

    def note_request(self) -> None:
        self.last_request = time.monotonic()
        self.request_seen = True

    def notify(self) -> None:
        event, self.changed = self.changed, asyncio.Event()
        event.set()


# -- helpers ------------------------------------------------------------------------


def make_driver(settings: Settings) -> Driver:
    """The driver named by ``settings.runtime_driver`` (``apprt.runtime.drivers.<name>``).

    A driver module may offer ``from_settings(settings) -> Driver``; otherwise its
    :class:`Driver` subclass of that name is built (the process driver with
    ``allow_untrusted=settings.allow_untrusted_process_driver``).
    """
    name = settings.runtime_driver
    try:
        module = importlib.import_module(f"apprt.runtime.drivers.{name}")
    except ModuleNotFoundError:
        raise ApprtError.single(
            f"there is no sandbox driver {name!r}",
            location="APPRT_RUNTIME_DRIVER",
            hint="use bwrap (Linux, default) or process (development only)",
        ) from None
    factory = getattr(module, "from_settings", None)
    if factory is not None:
        driver: Driver = factory(settings)
    else:
        classes = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, Driver)
            and getattr(obj, "name", None) == name
        ]
        if not classes:
            raise ApprtError.single(
                f"apprt.runtime.drivers.{name} has no driver named {name!r}",
                location="APPRT_RUNTIME_DRIVER",
                hint="use bwrap (Linux, default) or process (development only)",
            )
        cls: Any = classes[0]
        if name == "process":
            driver = cls(allow_untrusted=settings.allow_untrusted_process_driver)
        else:
            driver = cls()
    fingerprint = driver.fingerprint()
    if not fingerprint.healthy:
        raise ApprtError.single(
            f"the {name} driver cannot run here: {fingerprint.detail}",
            location="APPRT_RUNTIME_DRIVER",
            hint="fix the host as the detail says, or choose another driver",
        )
    return driver


def resolve_run_root(settings: Settings) -> Path:
    """Where run directories go: short enough for Unix socket paths, private (0700)."""
    root = settings.runtime_run_dir or settings.data_dir / "run"
    root = root.expanduser().absolute()
    if len(str(root)) + _RUN_SUFFIX_LEN > _SUN_PATH_MAX:
        digest = hashlib.sha256(str(settings.data_dir.absolute()).encode()).hexdigest()[:10]
        root = Path(tempfile.gettempdir()) / f"apprt-{os.getuid()}-{digest}"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = root.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ApprtError.single(
            f"{root} is not a private directory of this user (mode 0700)",
            location="APPRT_RUNTIME_RUN_DIR",
            hint=f"remove {root} or set APPRT_RUNTIME_RUN_DIR to a directory only apprt uses",
        )
    return root


def _exit_dict(result: ExitResult | None, reason: str = "") -> dict[str, Any]:
    if result is None:
        return {"exit_code": None, "signal": None, "oom_killed": False, "reason": reason}
    data = asdict(result)
    if reason and not data.get("reason"):
        data["reason"] = reason
    return data


def describe_exit(data: dict[str, Any] | None) -> str:
    if not data:
        return "exited"
    if data.get("oom_killed"):
        return "killed: out of memory"
    if data.get("signal"):
        return f"killed by signal {data['signal']}"
    if data.get("exit_code") is not None:
        return f"exited with code {data['exit_code']}"
    return str(data.get("reason") or "exited")


def _failed(slot: Slot) -> bool:
    return slot.state is State.FAILED


def _up_or_down(slot: Slot) -> bool:
    """Serving, or Failed, or going away: what a start is waited for until."""
    return slot.serving or slot.state in (State.FAILED, State.UNINSTALLING)


def _to_datetime(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


# -- the supervisor -----------------------------------------------------------------


class Supervisor:
    """Reconciles instances with the database and watches them (one per platform)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        driver: Driver,
        *,
        instance_key: Callable[[str], bytes],
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.driver = driver
        self.instance_key = instance_key
        self.metrics = metrics
        self.root = settings.data_dir / "runtime" / "instances"
        self.run_root = resolve_run_root(settings)
        self.slots: dict[str, Slot] = {}
        self.routes: dict[tuple[str, str], Slot] = {}
        #: Routes made by an install not yet activated: closed to the gateway.
        self.closed_routes: set[tuple[str, str]] = set()
        #: Limit hits counted by note_limit, recorded by the watch loop:
        #: (instance, kind, org) -> (slot, hits, latest detail).
        self._pending_limits: dict[tuple[str, str, str | None], tuple[Slot, int, str]] = {}
        self.policies: dict[tuple[str, str], float] = {}
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="apprt-supervisor")
        self._watcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._orphans: set[asyncio.Future[TaskHandle]] = set()
        self._stop_listeners: list[Callable[[Path], None]] = []
        # (services) callbacks run before a sandbox starts; see add_start_listener
        self._start_listeners: list[Callable[[Slot, Path], None]] = []
        self._last_flush = time.monotonic()
        self._closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.limits = LimitRecorder(sessions, metrics)
        self._limits_polled = 0.0

    def run_sync(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run one of the coroutines above from a worker thread (e.g. a job step).

        Blocks until it is done on the platform's event loop; never call it from the
        event loop itself.
        """
        if self.loop is None:
            coro.close()
            raise RuntimeError("the supervisor is not started")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- plumbing ------------------------------------------------------------------

    async def _io(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def add_stop_listener(self, callback: Callable[[Path], None]) -> None:
        """``callback(ingress_socket)`` is called when a sandbox stops being used."""
        self._stop_listeners.append(callback)

    def add_start_listener(self, callback: Callable[[Slot, Path], None]) -> None:
        """``callback(slot, run_dir)`` is called before a sandbox of ``slot`` starts in
        ``run_dir`` (in a worker thread), e.g. to put the platform API socket there
        (:mod:`apprt.services.api`). If the start then fails, the stop listeners get
        ``run_dir / "ingress.sock"``, as when a sandbox stops."""
        self._start_listeners.append(callback)

    def _starting(self, slot: Slot, run_dir: Path) -> None:
        for callback in self._start_listeners:
            try:
                callback(slot, run_dir)
            except Exception:
                log.exception("runtime.start_listener_failed", instance=slot.id)

    def _released(self, handle: TaskHandle) -> None:
        self._released_socket(handle.ingress_socket)

    def _released_socket(self, ingress_socket: Path) -> None:
        for callback in self._stop_listeners:
            try:
                callback(ingress_socket)
            except Exception:
                log.exception("runtime.stop_listener_failed")

    def _log_for(self, log_dir: Path) -> InstanceLog:
        return InstanceLog(
            log_dir,
            max_bytes=self.settings.instance_log_max_bytes,
            generations=self.settings.instance_log_generations,
        )

    def _new_slot(self, row: Instance) -> Slot:
        slot = Slot(row, self._log_for(Path(row.log_dir)), self.instance_key(row.id))
        self.slots[slot.id] = slot
        return slot

    # -- start and stop ------------------------------------------------------------

    async def start(self) -> None:
        """Load instances and policies, re-adopt live sandboxes, start watching."""
        self.loop = asyncio.get_running_loop()
        rows, routes, policies = await self._io(self._load)
        self.policies = policies
        for row in rows:
            self._new_slot(row)
        for org, app_id, instance_id, live in routes:
            slot = self.slots.get(instance_id)
            if slot is not None:
                self.routes[(org, app_id)] = slot
                slot.orgs.add(org)
                if not live:
                    self.closed_routes.add((org, app_id))
        await self._recover_all()
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch(), name="apprt-supervisor-watch"
        )
        log.info(
            "runtime.supervisor_started",
            driver=self.driver.name,
            instances=len(self.slots),
            running=sum(1 for s in self.slots.values() if s.state is State.RUNNING),
        )

    def _load(
        self,
    ) -> tuple[list[Instance], list[tuple[str, str, str, bool]], dict[tuple[str, str], float]]:
        with session_scope(self.sessions) as session:
            rows = list(
                session.scalars(select(Instance).where(Instance.removed_at.is_(None))).all()
            )
            routes = [
                (r.org, r.app_id, r.instance_id, r.live) for r in session.scalars(select(Route))
            ]
            policies = {
                (p.org, p.app_id): p.idle_timeout_s for p in session.scalars(select(IdlePolicy))
            }
            return rows, routes, policies

    async def close(self) -> None:
        """Stop watching; suspend every instance if ``runtime_stop_on_shutdown``."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for future in list(self._orphans):  # starts cut short: stop what they started
            self._orphans.discard(future)
            with contextlib.suppress(Exception):
                await self._io(self._stop_and_destroy, await future, 2.0)
        stop = self.settings.runtime_stop_on_shutdown
        if stop:
            for slot in list(self.slots.values()):
                if slot.handle is not None or slot.state is State.RUNNING:
                    with contextlib.suppress(Exception):
                        await self._suspend(slot, "platform shutdown", drain_s=0.0)
        with contextlib.suppress(Exception):
            await self._io(self._flush_requests, list(self.slots.values()))
        self._pool.shutdown(wait=True)
        # Stopping everything includes the driver's helpers (the bwrap driver's zygote);
        # otherwise they stay for the next platform process, like the sandboxes.
        shutdown = getattr(self.driver, "shutdown", None) if stop else None
        with contextlib.suppress(Exception):
            if callable(shutdown):
                shutdown()
            else:
                self.driver.close()

    async def _recover_all(self) -> None:
        live = [s for s in self.slots.values() if s.state in LIVE_STATES]
        results = await self._io(self._recover_handles, live)
        for slot, recovered in zip(live, results, strict=True):
            async with slot.lock:
                await self._recover_one(slot, recovered)
        for slot in self.slots.values():
            if slot.state is State.UNINSTALLING:
                self._spawn(self._finish_uninstall(slot, purge=False), f"uninstall-{slot.id}")

    def _recover_handles(self, slots: list[Slot]) -> list[bool]:
        results = []
        for slot in slots:
            ok = False
            if slot.handle is not None:
                try:
                    ok = self.driver.recover(slot.handle)
                except Exception:
                    log.exception("runtime.recover_failed", instance=slot.id)
            results.append(ok)
        return results

    async def _recover_one(self, slot: Slot, recovered: bool) -> None:
        if recovered:
            log.info("runtime.readopted", instance=slot.id, pid=slot.handle and slot.handle.pid)
            if slot.state is State.LOADING:
                await self._transition(slot, State.RUNNING, "re-adopted after a platform restart")
            elif slot.state is State.UPDATING:
                await self._transition(
                    slot,
                    State.RUNNING,
                    f"update interrupted by a platform restart; kept {slot.version}",
                )
            return
        # Gone (machine reboot, killed with the platform): start it again. This is
        # not the app's fault, so it does not count toward the crash loop.
        if slot.handle is not None:
            old = slot.handle
            with contextlib.suppress(Exception):
                await self._io(self.driver.destroy, old)
        if slot.state is State.LOADING:
            await self._persist(slot, handle=None)
        else:
            await self._transition(
                slot, State.LOADING, "sandbox gone after a platform restart", handle=None
            )
        slot.handle = None
        self._schedule_start(slot, delay=0.0, kind="recover")

    # -- persistence ---------------------------------------------------------------

    async def _transition(
        self, slot: Slot, target: State, reason: str, *, source: State | None = None, **fields: Any
    ) -> None:
        """Change state in the database (with the history row), then in memory.

        Database first: whoever sees the new state in memory (a request let through to a
        Running instance, a caller of :meth:`get`) finds it, and the handle, persisted.
        ``source`` is the state being left when the memory already moved on (suspend
        marks the slot first so that no new request is proxied while it stops).
        """
        source = source or slot.state
        check_transition(slot.id, source, target)
        await self._io(self._write_transition, slot.id, source, target, reason, fields)
        slot.state = target
        log.info(
            "runtime.transition", instance=slot.id, app=slot.app_id, to=target.value, reason=reason
        )
        slot.notify()

    def _write_transition(
        self,
        instance_id: str,
        source: State,
        target: State,
        reason: str,
        fields: dict[str, Any],
    ) -> None:
        with session_scope(self.sessions) as session:
            record_transition(session, instance_id, source, target, reason, **fields)

    async def _persist(self, slot: Slot, **fields: Any) -> None:
        await self._io(self._write_fields, slot.id, fields)

    def _write_fields(self, instance_id: str, fields: dict[str, Any]) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(Instance, instance_id)
            if row is not None:
                for name, value in fields.items():
                    setattr(row, name, value)
                row.updated_at = utcnow()

    def _flush_requests(self, slots: Iterable[Slot]) -> None:
        pending = [s for s in slots if s.request_seen]
        if not pending:
            return
        now_wall, now_mono = time.time(), time.monotonic()
        with session_scope(self.sessions) as session:
            for slot in pending:
                slot.request_seen = False
                row = session.get(Instance, slot.id)
                if row is not None:
                    row.last_request_at = _to_datetime(now_wall - (now_mono - slot.last_request))

    # -- lookups -------------------------------------------------------------------

    def lookup(self, org: str, app_id: str) -> Slot | None:
        """The organization's instance of ``app_id``, its route open or not."""
        return self.routes.get((org, app_id))

    def serving(self, org: str, app_id: str) -> Slot | None:
        """The instance serving ``/apps/{org}/{app_id}``: None until its route is open
        (hot path: two hash lookups)."""
        if (org, app_id) in self.closed_routes:
            return None
        return self.routes.get((org, app_id))

    async def open_route(self, org: str, app_id: str, *, live: bool = True) -> None:
        """Let the gateway route to the organization's app (``live=False``: stop it).

        The install's activation opens the route :meth:`deploy` made closed; its
        compensation closes it again. Idempotent.
        """
        self._require(org, app_id)

        def write() -> None:
            with session_scope(self.sessions) as session:
                row = session.get(Route, (org, app_id))
                if row is not None:
                    row.live = live

        await self._io(write)
        if live:
            self.closed_routes.discard((org, app_id))
        else:
            self.closed_routes.add((org, app_id))

    def _require(self, org: str, app_id: str) -> Slot:
        slot = self.routes.get((org, app_id))
        if slot is None:
            raise InstanceNotFoundError(org, app_id)
        return slot

    def get_instance(self, instance_id: str) -> Slot:
        slot = self.slots.get(instance_id)
        if slot is None:
            raise InstanceNotFoundError(None, instance_id)
        return slot

    def idle_timeout(self, slot: Slot, org: str | None = None) -> float:
        """Seconds of no request before suspending ``slot`` (0: never).

        Precedence: policy for this org and app > the installer's value for the
        instance > policy for the app > policy for the org > ``idle_timeout_s``.
        """
        org = org if org is not None else (slot.org or "")
        app = slot.app_id
        for key in ((org, app),):
            if org and key in self.policies:
                return self.policies[key]
        if slot.idle_timeout_s is not None:
            return slot.idle_timeout_s
        if ("", app) in self.policies:
            return self.policies[("", app)]
        if org and (org, "") in self.policies:
            return self.policies[(org, "")]
        return self.settings.idle_timeout_s

    def info(self, slot: Slot) -> InstanceInfo:
        return InstanceInfo(
            id=slot.id,
            org=slot.org,
            app_id=slot.app_id,
            version=slot.version,
            tenancy=slot.tenancy.value,
            driver=slot.driver,
            state=slot.state,
            pid=slot.handle.pid if slot.handle else None,
            trusted=slot.trusted,
            orgs=sorted(slot.orgs),
            restart_count=slot.restart_count,
            idle_timeout_s=self.idle_timeout(slot),
            in_flight=slot.in_flight,
            last_exit=slot.last_exit,
            last_request_at=_to_datetime(time.time() - (time.monotonic() - slot.last_request)),
            started_at=slot.started_at,
            failure_log=slot.failure_log,
            resources=slot.resources.model_dump(),
        )

    def list_instances(self) -> list[InstanceInfo]:
        return [
            self.info(s) for s in sorted(self.slots.values(), key=lambda s: (s.app_id, s.org or ""))
        ]

    def get(self, org: str, app_id: str) -> InstanceInfo:
        return self.info(self._require(org, app_id))

    async def history(self, instance_id: str) -> list[TransitionInfo]:
        def read() -> list[TransitionInfo]:
            with session_scope(self.sessions) as session:
                rows = session.scalars(
                    select(Transition)
                    .where(Transition.instance_id == instance_id)
                    .order_by(Transition.id)
                )
                return [
                    TransitionInfo(
                        from_state=r.from_state, to_state=r.to_state, reason=r.reason, at=r.at
                    )
                    for r in rows
                ]

        return await self._io(read)

    def samples(self) -> list[InstanceSample]:
        """Every instance with its driver stats (blocking: call from a thread)."""
        out = []
        for slot in list(self.slots.values()):
            stats = None
            handle = slot.handle
            if handle is not None:
                try:
                    stats = self.driver.stats(handle)
                except Exception:
                    stats = None
            out.append(
                InstanceSample(
                    id=slot.id,
                    org=slot.org or "",
                    app_id=slot.app_id,
                    version=slot.version,
                    state=slot.state,
                    stats=stats,
                    in_flight=slot.in_flight,
                )
            )
        return out

    # -- limits and capabilities ---------------------------------------------------

    def capability_problems(self, spec: DeploySpec) -> list[Problem]:
        """Why ``spec`` cannot run on this driver: limits it needs and the driver lacks."""
        missing = missing_capabilities(self.driver.capabilities(), spec.resources)
        if not missing or spec.trusted:
            if missing:
                log.warning(
                    "runtime.limits_not_enforced", app=spec.app_id, driver=self.driver.name,
                    missing=missing, why="trusted app",
                )  # fmt: skip
            return []
        if self.driver.allow_untrusted:
            log.warning(
                "runtime.limits_not_enforced", app=spec.app_id, driver=self.driver.name,
                missing=missing, why="the operator allows untrusted apps on this driver",
            )  # fmt: skip
            return []
        return [
            Problem(
                f"{spec.app_id} {spec.version} is not trusted and needs "
                f"{', '.join(m.replace('_', ' ') for m in missing)}, which the "
                f"{self.driver.name} driver cannot enforce here",
                location="resources",
                hint="run the platform with the bwrap driver (APPRT_RUNTIME_DRIVER=bwrap) on a "
                "host where its fingerprint is healthy (`apprt runtime driver` shows what it "
                "enforces), or, for development only, allow untrusted apps on the process "
                "driver (APPRT_ALLOW_UNTRUSTED_PROCESS_DRIVER=1)",
            )
        ]

    def driver_info(self) -> dict[str, Any]:
        """The driver's name, fingerprint and capabilities (blocking: call from a thread)."""
        fingerprint = self.driver.fingerprint()
        return {
            "name": self.driver.name,
            "healthy": fingerprint.healthy,
            "detail": fingerprint.detail,
            "attributes": fingerprint.attributes,
            "capabilities": asdict(self.driver.capabilities()),
            "allow_untrusted": self.driver.allow_untrusted,
        }

    def note_limit(self, slot: Slot, kind: str, detail: str, *, org: str | None = None) -> None:
        """Count a limit hit seen outside the driver (gateway timeout, egress refused).

        Call from the event loop. Hits are only counted here, without I/O; the watch loop
        records what accumulated once per tick, so an app hammering its limits costs one
        write a second, not one per hit, and cannot crowd other apps' starts out of the
        thread pool.
        """
        key = (slot.id, kind, org)
        pending = self._pending_limits.get(key)
        count = pending[1] + 1 if pending is not None else 1
        self._pending_limits[key] = (slot, count, detail)

    def _record_pending_limits(self, pending: list[tuple[Slot, str, int, str, str | None]]) -> None:
        for slot, kind, count, detail, org in pending:
            try:
                self.limits.record(slot, kind, count, detail, org=org)
            except Exception:
                log.exception("runtime.limit_record_failed", instance=slot.id, kind=kind)

    def _poll_limits(self, slot: Slot | None, handle: TaskHandle) -> None:
        """Record what the driver's limit counters for ``handle`` added (blocking)."""
        if slot is None:
            return
        try:
            self.limits.poll(slot, handle, self.driver.limit_events(handle))
        except Exception:
            log.exception("runtime.limit_poll_failed", instance=slot.id)

    async def limit_events(
        self, instance_id: str, *, org: str | None = None, limit: int = 100
    ) -> list[LimitEventInfo]:
        """An instance's limit events, newest first (``org``: those of its requests only)."""
        return await self._io(partial(self.limits.list, instance_id, org=org, limit=limit))

    # -- deploy / uninstall --------------------------------------------------------

    async def deploy(self, spec: DeploySpec, *, live: bool = True) -> InstanceInfo:
        """Place ``spec`` on this node (state Installed) and route its organization to it.

        ``live=False`` makes the route closed to the gateway until :meth:`open_route`
        (an install opens it at activation). Idempotent for the same app, organization
        and version (an existing route keeps its state). A different version of an app
        already deployed for the organization is refused: use :meth:`update`.
        """
        problems = spec.problems() + self.capability_problems(spec)
        if problems:
            raise InvalidDeploySpecError(problems, title="cannot deploy")
        if spec.tenancy is Tenancy.shared:
            slot = next(
                (
                    s
                    for s in self.slots.values()
                    if s.app_id == spec.app_id
                    and s.tenancy is Tenancy.shared
                    and s.state is not State.UNINSTALLING
                ),
                None,
            )
        else:
            assert spec.org is not None
            slot = self.routes.get((spec.org, spec.app_id))
        if slot is not None and slot.version != spec.version:
            raise AlreadyDeployedError.single(
                f"{spec.app_id} {slot.version} is already deployed"
                + (f" for {spec.org}" if spec.org else ""),
                location="version",
                hint=f"update it to {spec.version} instead of deploying it again",
            )
        if slot is None:
            row = await self._io(self._create_instance, spec)
            slot = self._new_slot(row)
            log.info("runtime.deployed", instance=slot.id, app=spec.app_id, version=spec.version)
            self._prepare_soon(slot)
        if spec.org and (spec.org, spec.app_id) not in self.routes:
            existing = self.routes.get((spec.org, spec.app_id))
            if existing is not None and existing is not slot:
                raise AlreadyDeployedError.single(
                    f"{spec.org} already uses another instance of {spec.app_id}",
                    location="org",
                    hint="uninstall it first",
                )
            await self._io(self._create_route, spec.org, spec.app_id, slot.id, live)
            if not live:
                self.closed_routes.add((spec.org, spec.app_id))
            self.routes[(spec.org, spec.app_id)] = slot
            slot.orgs.add(spec.org)
        return self.info(slot)

    def _create_instance(self, spec: DeploySpec) -> Instance:
        instance_id = "i" + secrets.token_hex(6)
        home = self.root / instance_id
        data_dir, log_dir = home / "data", home / "logs"
        for d in (home, data_dir, log_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        with session_scope(self.sessions) as session:
            row = Instance(
                id=instance_id,
                org=spec.org if spec.tenancy is Tenancy.isolated else None,
                app_id=spec.app_id,
                version=spec.version,
                tenancy=spec.tenancy.value,
                entry=spec.entry,
                driver=self.driver.name,
                state=State.INSTALLED,
                handle=None,
                code_dir=str(spec.code_dir),
                env_dir=str(spec.env_dir) if spec.env_dir else None,
                data_dir=str(data_dir),
                run_dir=str(self.run_root),
                log_dir=str(log_dir),
                resources=spec.resources.model_dump(),
                trusted=spec.trusted,
                grants=list(spec.grants),
                idle_timeout_s=spec.idle_timeout_s,
                restart_count=0,
                recent_crashes=[],
            )
            session.add(row)
            session.flush()
            session.add(
                Transition(
                    instance_id=instance_id,
                    from_state=None,
                    to_state=State.INSTALLED,
                    reason=f"deployed {spec.app_id} {spec.version}",
                )
            )
            return row

    def _create_route(self, org: str, app_id: str, instance_id: str, live: bool = True) -> None:
        with session_scope(self.sessions) as session:
            session.merge(Route(org=org, app_id=app_id, instance_id=instance_id, live=live))

    def _delete_route(self, org: str, app_id: str) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(Route, (org, app_id))
            if row is not None:
                session.delete(row)

    async def uninstall(self, org: str, app_id: str, *, purge: bool = False) -> InstanceInfo:
        """Remove the organization's route; the instance goes with its last route.

        ``purge`` also deletes the instance's data and logs (else they are kept for the
        install engine's backup step).
        """
        slot = self._require(org, app_id)
        await self._io(self._delete_route, org, app_id)
        self.routes.pop((org, app_id), None)
        self.closed_routes.discard((org, app_id))
        slot.orgs.discard(org)
        if not slot.orgs:
            async with slot.lock:
                if slot.task is not None and slot.task is not asyncio.current_task():
                    slot.task.cancel()
                await self._transition(slot, State.UNINSTALLING, f"uninstalled by {org}")
            await self._finish_uninstall(slot, purge=purge)
        return self.info(slot)

    async def _finish_uninstall(self, slot: Slot, *, purge: bool) -> None:
        async with slot.lock:
            handle, slot.handle = slot.handle, None
            if handle is not None:
                await self._io(self._stop_and_destroy, handle, 5.0)
                self._released(handle)
            await self._persist(slot, handle=None, removed_at=utcnow())
            self.slots.pop(slot.id, None)
            self.limits.forget(slot.id)
            if purge:
                await self._io(shutil.rmtree, self.root / slot.id, True)
            slot.notify()

    # -- starting ------------------------------------------------------------------

    def _task_config(self, slot: Slot, run_dir: Path) -> TaskConfig:
        """The driver's config for a sandbox of ``slot``.

        The task id is the instance id (drivers derive the sandbox's uid and cgroup from
        it, so it stays the owner of its data across restarts); the run directory is new
        for every start, so a stale socket is never mistaken for a live one.
        """
        return TaskConfig(
            instance_id=slot.id,
            app_id=slot.app_id,
            version=slot.version,
            org=slot.org,
            code_dir=slot.code_dir,
            entry=slot.entry,
            env_dir=slot.env_dir,
            data_dir=slot.data_dir,
            run_dir=run_dir,
            resources=slot.resources,
            env={
                "APPRT_INSTANCE_ID": slot.id,
                "APPRT_APP_ID": slot.app_id,
                "APPRT_APP_VERSION": slot.version,
                "APPRT_ORG": slot.org or "",
                "APPRT_IDENTITY_KEY": slot.identity_key.hex(),
            },
            trusted=slot.trusted,
            log_path=slot.log.path,
        )

    def _start_sandbox(self, slot: Slot) -> TaskHandle:
        slot.log.prepare()
        config = self._task_config(slot, self.run_root / f"{slot.id}-{secrets.token_hex(3)}")
        self._starting(slot, config.run_dir)  # start listeners (the platform API socket)
        try:
            handle = self.driver.start(config)
            self.limits.started(handle)
            return handle
        except BaseException:
            self._released_socket(config.run_dir / "ingress.sock")  # undo the start listeners
            shutil.rmtree(config.run_dir, ignore_errors=True)
            raise

    def _discard_orphan(self, future: asyncio.Future[TaskHandle]) -> None:
        if future not in self._orphans:
            return  # close() took care of it
        self._orphans.discard(future)
        if future.cancelled() or future.exception() is not None:
            return
        handle = future.result()
        with contextlib.suppress(RuntimeError):  # executor shut down
            self._pool.submit(self._stop_and_destroy, handle, 2.0)

    def _prepare_soon(self, slot: Slot) -> None:
        """Let the driver warm what makes this instance's next start fast."""
        config = self._task_config(slot, self.run_root / f"{slot.id}-prepare")

        def prepare() -> None:
            try:
                self.driver.prepare(config)
            except Exception:
                log.warning("runtime.prepare_failed", instance=slot.id, exc_info=True)

        with contextlib.suppress(RuntimeError):  # executor shut down: closing
            self._pool.submit(prepare)

    def _stop_and_destroy(self, handle: TaskHandle, timeout: float) -> ExitResult | None:
        result = None
        self._poll_limits(self.slots.get(handle.instance_id), handle)  # before they go
        try:
            self.driver.stop(handle, timeout=timeout)
            result = self.driver.wait(handle, timeout=timeout)
        except Exception:
            log.exception("runtime.stop_failed", instance=handle.instance_id)
        try:
            self.driver.destroy(handle)
        except Exception:
            log.exception("runtime.destroy_failed", instance=handle.instance_id)
        return result

    def _exited(self, handle: TaskHandle) -> ExitResult | None:
        result: ExitResult | None = None
        with contextlib.suppress(Exception):
            result = self.driver.wait(handle, timeout=0)
        self._poll_limits(self.slots.get(handle.instance_id), handle)  # an OOM kill ended it
        with contextlib.suppress(Exception):
            self.driver.destroy(handle)
        return result

    def _schedule_start(self, slot: Slot, *, delay: float, kind: str) -> None:
        if slot.task is not None and not slot.task.done():
            return
        if slot.wake_started is None:
            slot.wake_started = time.monotonic()
            slot.wake_kind = kind
        slot.task = self._spawn(self._start_after(slot, delay), f"start-{slot.id}")

    async def _start_after(self, slot: Slot, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        async with slot.lock:
            if self._closed or slot.state is not State.LOADING or slot.handle is not None:
                return
            await self._start_attempt(slot)

    async def _start_attempt(
        self, slot: Slot, *, persisting: Coroutine[Any, Any, None] | None = None
    ) -> None:
        """Start the sandbox of a Loading instance (lock held).

        ``persisting``: the transition into Loading, written meanwhile.
        """
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._start_sandbox, slot)
        if persisting is not None:
            try:
                await persisting
            except BaseException:
                self._orphans.add(future)
                future.add_done_callback(self._discard_orphan)
                raise
        try:
            handle = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The start goes on in its thread: what it starts must not be left running
            # unknown to anyone (close() waits for it; otherwise it is stopped when done).
            self._orphans.add(future)
            future.add_done_callback(self._discard_orphan)
            raise
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("runtime.start_failed", instance=slot.id, app=slot.app_id, error=reason)
            await self._crashed(slot, _exit_dict(None, f"start failed: {reason}"))
            return
        slot.handle = handle
        slot.started_at = utcnow()
        slot.note_request()
        kind, started = slot.wake_kind, slot.wake_started
        slot.wake_started, slot.task = None, None
        await self._transition(
            slot,
            State.RUNNING,
            f"started (pid {handle.pid})",
            handle=asdict(handle),
            started_at=slot.started_at,
            run_dir=str(handle.state.get("run_dir", self.run_root)),
        )
        if started is not None and self.metrics is not None:
            self.metrics.cold_start(
                slot.org or "", slot.app_id, time.monotonic() - started, kind or "start"
            )

    async def _crashed(self, slot: Slot, exit_: dict[str, Any]) -> None:
        """Record a crash (lock held); restart with backoff or end in Failed."""
        now = time.time()
        window = self.settings.crash_loop_window_s
        crashes = [t for t in slot.recent_crashes if now - t < window] + [now]
        slot.recent_crashes = crashes
        slot.last_exit = exit_
        if self.metrics is not None:
            self.metrics.crash(slot.org or "", slot.app_id)
        what = describe_exit(exit_)
        if len(crashes) >= self.settings.crash_loop_count:
            tail = await self._io(slot.log.tail_bytes, FAILURE_LOG_BYTES)
            slot.failure_log = tail.decode("utf-8", "replace")
            slot.wake_started, slot.task = None, None
            await self._transition(
                slot,
                State.FAILED,
                f"crash loop: {len(crashes)} crashes in {window:g} s; last {what}",
                handle=None,
                last_exit=exit_,
                recent_crashes=crashes,
                failure_log=slot.failure_log,
            )
            return
        delay = min(
            self.settings.restart_backoff_s * 2 ** (len(crashes) - 1),
            self.settings.restart_backoff_max_s,
        )
        slot.restart_count += 1
        fields: dict[str, Any] = {
            "handle": None,
            "last_exit": exit_,
            "recent_crashes": crashes,
            "restart_count": slot.restart_count,
        }
        reason = f"{what}; restart {slot.restart_count} in {delay:.2g} s"
        if slot.state is State.LOADING:
            await self._persist(slot, **fields)
            log.info("runtime.retry", instance=slot.id, reason=reason)
        else:
            await self._transition(slot, State.LOADING, reason, **fields)
        slot.task = None
        self._schedule_start(slot, delay=delay, kind="restart")

    async def _on_exit(self, slot: Slot, handle: TaskHandle) -> None:
        async with slot.lock:
            if slot.handle is not handle:
                return  # already replaced or stopped on purpose
            result = await self._io(self._exited, handle)
            slot.handle = None
            self._released(handle)
            log.warning(
                "runtime.crashed", instance=slot.id, app=slot.app_id, exit=_exit_dict(result)
            )
            await self._crashed(slot, _exit_dict(result))

    # -- activate, wake, suspend, restart ------------------------------------------

    async def activate(self, org: str, app_id: str, *, wait: bool = True) -> InstanceInfo:
        """Start an Installed or Suspended instance; with ``wait``, until it is Running.

        Raises :class:`StartFailedError` when it ends in Failed (its problems carry the
        end of the logs). Running: nothing to do.
        """
        slot = self._require(org, app_id)
        if slot.state is State.FAILED:
            raise self._failed_error(slot)
        if slot.state is State.UNINSTALLING:
            raise InstanceNotFoundError(org, app_id)
        self._begin_start(slot, "activated", kind="activation")
        if wait:
            await self._wait_until(slot, _up_or_down, None)
            if _failed(slot):  # (a function: mypy keeps the narrowing across the await)
                raise self._failed_error(slot)
        return self.info(slot)

    def _failed_error(self, slot: Slot) -> StartFailedError:
        tail = (slot.failure_log or "").strip().splitlines()[-5:]
        return StartFailedError(
            [
                Problem(
                    f"{slot.app_id} {slot.version} failed: {describe_exit(slot.last_exit)}",
                    location=f"{slot.org or '*'}/{slot.app_id}",
                    hint="fix the app and update it, or `apprt runtime restart` it; "
                    + ("last output: " + " | ".join(tail) if tail else "it printed nothing"),
                )
            ],
            title="app failed",
        )

    async def restart(self, org: str, app_id: str) -> InstanceInfo:
        """Start the instance afresh: a Failed one (crash history cleared), a Running one
        (stopped, then started), an Installed or Suspended one (started)."""
        slot = self._require(org, app_id)
        async with slot.lock:
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()  # a pending backoff: start now instead
            slot.task = None
            handle = slot.handle
            if slot.state is not State.LOADING:
                reason = "manual restart" + (" after failure" if slot.state is State.FAILED else "")
                await self._transition(slot, State.LOADING, reason, handle=None, recent_crashes=[])
            slot.handle = None
            if handle is not None:
                await self._io(self._stop_and_destroy, handle, 5.0)
                self._released(handle)
            slot.recent_crashes = []
            slot.wake_started, slot.wake_kind = time.monotonic(), "restart"
            await self._start_attempt(slot)
        await self._wait_settled(slot)
        if _failed(slot):
            raise self._failed_error(slot)
        return self.info(slot)

    def _begin_start(self, slot: Slot, reason: str, *, kind: str) -> None:
        """Installed/Suspended -> Loading, the start running in the background.

        One start at a time: callers arriving while it runs share it.
        """
        if slot.task is not None and not slot.task.done():
            return
        if slot.state not in (State.INSTALLED, State.SUSPENDED):
            return
        slot.wake_started, slot.wake_kind = time.monotonic(), kind
        slot.task = self._spawn(self._wake(slot, reason), f"wake-{slot.id}")

    async def _wake(self, slot: Slot, reason: str) -> None:
        async with slot.lock:
            if slot.state not in (State.INSTALLED, State.SUSPENDED):
                slot.task = None
                return
            # Loading is written while the sandbox starts: a wake waits for one write.
            await self._start_attempt(
                slot, persisting=self._transition(slot, State.LOADING, reason)
            )

    async def _wait_settled(self, slot: Slot, timeout: float | None = None) -> None:
        """Wait while the instance is Loading (or Updating)."""
        settled = (
            State.RUNNING,
            State.FAILED,
            State.SUSPENDED,
            State.INSTALLED,
            State.UNINSTALLING,
        )
        await self._wait_until(slot, lambda s: s.state in settled, timeout)

    async def _wait_until(
        self, slot: Slot, done: Callable[[Slot], bool], timeout: float | None
    ) -> None:
        """Wait (up to ``timeout``) until ``done(slot)``, re-checked at every transition."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not done(slot):
            event = slot.changed
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            await asyncio.wait_for(event.wait(), remaining)

    async def ensure_running(self, slot: Slot, timeout: float) -> None:
        """Make ``slot`` serve (waking it if needed) within ``timeout`` seconds.

        Concurrent callers share one wake. Raises :class:`AppUnavailableError` when the
        instance is Failed or Uninstalling, or does not come up in time.
        """
        if slot.serving:
            return
        if slot.state in (State.INSTALLED, State.SUSPENDED):
            self._begin_start(slot, "woken by a request", kind="wake")
        try:
            await self._wait_until(slot, _up_or_down, timeout)
        except TimeoutError:
            raise AppUnavailableError(
                [
                    Problem(
                        f"{slot.app_id} is {slot.state.value} and did not come up within "
                        f"{timeout:g} s",
                        hint="retry shortly; `apprt logs` shows what the app printed",
                    )
                ],
                retry_after=1,
            ) from None
        if slot.state is State.RUNNING and slot.handle is not None:
            return
        if slot.state is State.FAILED:
            raise AppUnavailableError(
                [
                    Problem(
                        f"{slot.app_id} failed: {describe_exit(slot.last_exit)}",
                        hint="see `apprt logs` and restart it with `apprt runtime restart`",
                    )
                ]
            )
        raise AppUnavailableError(
            [Problem(f"{slot.app_id} is {slot.state.value}", hint="retry shortly")],
            retry_after=1,
        )

    async def call_hook(
        self, org: str, app_id: str, hook: str, context: dict[str, Any], *, timeout: float = 30
    ) -> Any:
        """Run the app's lifecycle hook ``hook`` (``module:function``) in its sandbox.

        The instance is woken if needed; the hook gets ``context`` and its JSON-able
        result is returned. The call goes over the ingress socket to the runner's hook
        door (``/.apprt/hook``), which the gateway never forwards and which checks the
        instance's key. Raises :class:`HookFailedError` when the hook raises or hangs.
        """
        slot = self.lookup(org, app_id)
        if slot is None:
            raise InstanceNotFoundError.single(
                f"{app_id} is not deployed for {org}", location="app", hint="deploy it first"
            )
        await self.ensure_running(slot, timeout)
        assert slot.ingress is not None
        body = json.dumps({"hook": hook, "context": context}).encode()
        head = (
            f"POST /.apprt/hook HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-apprt-hook-key: {slot.identity_key.hex()}\r\n"
            "connection: close\r\n\r\n"
        ).encode()

        async def exchange() -> bytes:
            reader, writer = await asyncio.open_unix_connection(slot.ingress)
            try:
                writer.write(head + body)
                await writer.drain()
                return await reader.read()
            finally:
                writer.close()

        try:
            raw = await asyncio.wait_for(exchange(), timeout)
        except (TimeoutError, OSError) as exc:
            raise HookFailedError.single(
                f"hook {hook} of {app_id} did not answer: {type(exc).__name__}",
                location=hook,
                hint=f"make it finish within {timeout:g} s",
            ) from None
        status_line, _, rest = raw.partition(b"\r\n")
        payload = json.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")
        if b" 200 " not in status_line:
            raise HookFailedError.single(
                f"hook {hook} of {app_id} failed: {payload.get('error', status_line.decode())}",
                location=hook,
                hint="see the app's logs (apprt logs ORG APP)",
            )
        return payload.get("result")

    async def suspend(self, org: str, app_id: str, *, reason: str = "maintenance") -> InstanceInfo:
        """Running -> Suspended after requests in flight finish (up to their timeout)."""
        slot = self._require(org, app_id)
        if slot.state is not State.SUSPENDED:
            await self._suspend(slot, reason, drain_s=slot.resources.request_timeout_s)
        return self.info(slot)

    async def _suspend(
        self, slot: Slot, reason: str, *, drain_s: float, idle: bool = False
    ) -> bool:
        async with slot.lock:
            if slot.state is State.SUSPENDED:
                return False
            if idle and (
                slot.state is not State.RUNNING
                or slot.in_flight
                or time.monotonic() - slot.last_request < self.idle_timeout(slot)
            ):
                return False  # a request came in meanwhile
            source = slot.state
            check_transition(slot.id, source, State.SUSPENDED)
            handle = slot.handle
            slot.state = State.SUSPENDED  # from here on no new request is proxied
            await self._drain(slot, drain_s)
            slot.handle = None
            if handle is not None:
                await self._io(self._stop_and_destroy, handle, 5.0)
                self._released(handle)
            await self._transition(slot, State.SUSPENDED, reason, source=source, handle=None)
        self._prepare_soon(slot)
        return True

    async def set_idle_policy(self, org: str, app_id: str, seconds: float | None) -> None:
        """Idle timeout for an app (``org=""``), an org (``app_id=""``), or both; None clears."""

        def write() -> None:
            with session_scope(self.sessions) as session:
                row = session.scalars(
                    select(IdlePolicy).where(IdlePolicy.org == org, IdlePolicy.app_id == app_id)
                ).one_or_none()
                if seconds is None:
                    if row is not None:
                        session.delete(row)
                elif row is None:
                    session.add(IdlePolicy(org=org, app_id=app_id, idle_timeout_s=seconds))
                else:
                    row.idle_timeout_s = seconds
                    row.updated_at = utcnow()

        await self._io(write)
        if seconds is None:
            self.policies.pop((org, app_id), None)
        else:
            self.policies[(org, app_id)] = seconds

    # -- update --------------------------------------------------------------------

    async def update(self, org: str, app_id: str, spec: DeploySpec) -> InstanceInfo:
        """Put ``spec`` (a new version) in place of the organization's instance.

        Running: requests in flight finish, the old sandbox stops and the new version
        starts; requests arriving meanwhile wait for it. If it does not start, the old
        version is started again (Updating -> Running on the old version) and
        StartFailedError is raised. Installed or Suspended: the version is swapped,
        nothing starts. Failed: the new version is started.
        """
        problems = spec.problems() + self.capability_problems(spec)
        if problems:
            raise InvalidDeploySpecError(problems, title="cannot update")
        slot = self._require(org, app_id)
        if spec.app_id != slot.app_id:
            raise InvalidDeploySpecError.single(
                f"cannot update {slot.app_id} with {spec.app_id}", location="app_id"
            )
        async with slot.lock:
            source = slot.state
            check_transition(slot.id, source, State.UPDATING)
            old_version = slot.version
            await self._transition(slot, State.UPDATING, f"update {old_version} -> {spec.version}")
            fields = self._spec_fields(spec)
            if source is State.RUNNING:
                await self._update_running(slot, spec, fields, old_version)
            else:
                await self._persist(slot, **fields)
                self._apply_fields(slot, fields)
                if source is State.FAILED:
                    slot.recent_crashes = []
                    slot.wake_started, slot.wake_kind = time.monotonic(), "update"
                    await self._transition(
                        slot, State.LOADING, f"starting {spec.version}", recent_crashes=[]
                    )
                    await self._start_attempt(slot)
                else:
                    await self._transition(slot, source, f"now {spec.version}")
        await self._wait_settled(slot)
        return self.info(slot)

    def _spec_fields(self, spec: DeploySpec) -> dict[str, Any]:
        return {
            "version": spec.version,
            "entry": spec.entry,
            "code_dir": str(spec.code_dir),
            "env_dir": str(spec.env_dir) if spec.env_dir else None,
            "resources": spec.resources.model_dump(),
            "trusted": spec.trusted,
            "grants": list(spec.grants),
            "idle_timeout_s": spec.idle_timeout_s,
        }

    def _apply_fields(self, slot: Slot, fields: dict[str, Any]) -> None:
        slot.version = fields["version"]
        slot.entry = fields["entry"]
        slot.code_dir = Path(fields["code_dir"])
        slot.env_dir = Path(fields["env_dir"]) if fields["env_dir"] else None
        slot.resources = Resources.model_validate(fields["resources"])
        slot.trusted = fields["trusted"]
        slot.grants = tuple(fields["grants"])
        slot.idle_timeout_s = fields["idle_timeout_s"]

    async def _update_running(
        self, slot: Slot, spec: DeploySpec, fields: dict[str, Any], old_version: str
    ) -> None:
        """Stop the old version, start the new one (lock held, state Updating).

        Requests arriving meanwhile wait for the instance (the gateway holds them up to
        their timeout) rather than fail. Drivers know one sandbox per instance (its uid
        owns the data), so versions are not run side by side here; zero-downtime
        blue-green runs two instances and is the rollout's business.
        """
        saved = self._spec_fields(
            DeploySpec(
                app_id=slot.app_id,
                version=slot.version,
                code_dir=slot.code_dir,
                entry=slot.entry,
                org=slot.org,
                tenancy=slot.tenancy,
                env_dir=slot.env_dir,
                resources=slot.resources,
                trusted=slot.trusted,
                grants=slot.grants,
                idle_timeout_s=slot.idle_timeout_s,
            )
        )
        old, slot.handle = slot.handle, None  # from here on requests wait
        await self._drain(slot, slot.resources.request_timeout_s)
        if old is not None:
            self._released(old)
            await self._io(self._stop_and_destroy, old, slot.resources.request_timeout_s)
        self._apply_fields(slot, fields)
        started = time.monotonic()
        try:
            new = await self._io(self._start_sandbox, slot)
        except Exception as exc:
            self._apply_fields(slot, saved)
            problem = Problem(
                f"{spec.version} did not start: {exc}",
                location=f"{slot.app_id}@{spec.version}",
                hint=f"{old_version} was started again; see `apprt logs` for the new "
                "version's output",
            )
            try:
                back = await self._io(self._start_sandbox, slot)
            except Exception as again:
                log.error("runtime.rollback_failed", instance=slot.id, error=str(again))
                await self._crashed(slot, _exit_dict(None, f"update and rollback failed: {again}"))
            else:
                slot.handle, slot.started_at = back, utcnow()
                await self._transition(
                    slot,
                    State.RUNNING,
                    f"update to {spec.version} failed; back on {old_version} (pid {back.pid})",
                    handle=asdict(back),
                    started_at=slot.started_at,
                )
            raise StartFailedError([problem], title="update failed") from None
        slot.handle, slot.started_at = new, utcnow()
        await self._transition(
            slot,
            State.RUNNING,
            f"now {spec.version} (pid {new.pid})",
            handle=asdict(new),
            started_at=slot.started_at,
            **fields,
        )
        if self.metrics is not None:
            self.metrics.cold_start(
                slot.org or "", slot.app_id, time.monotonic() - started, "update"
            )

    async def _drain(self, slot: Slot, seconds: float) -> None:
        """Wait (up to ``seconds``) for the requests being proxied to finish."""
        deadline = time.monotonic() + seconds
        while slot.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # -- the watch loop ------------------------------------------------------------

    async def _watch(self) -> None:
        interval = self.settings.runtime_watch_interval_s
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("runtime.watch_failed")
            await asyncio.sleep(interval)

    async def _tick(self) -> None:
        live = [(s, s.handle) for s in self.slots.values() if s.handle is not None]
        if live:
            limits = time.monotonic() - self._limits_polled >= POLL_INTERVAL_S
            if limits:
                self._limits_polled = time.monotonic()
            exited = await self._io(self._check, live, limits)
            for slot, handle in exited:
                self._spawn(self._on_exit(slot, handle), f"exit-{slot.id}")
        now = time.monotonic()
        for slot in list(self.slots.values()):
            if slot.state is not State.RUNNING or slot.in_flight or slot.lock.locked():
                continue
            timeout = self.idle_timeout(slot)
            if timeout > 0 and now - slot.last_request >= timeout:
                self._spawn(
                    self._suspend(slot, f"idle for {timeout:g} s", drain_s=0.0, idle=True),
                    f"idle-{slot.id}",
                )
        if now - self._last_flush >= _FLUSH_INTERVAL_S:
            self._last_flush = now
            await self._io(self._flush_requests, list(self.slots.values()))
        if self._pending_limits:
            pending = [
                (slot, kind, count, detail, org)
                for (_, kind, org), (slot, count, detail) in self._pending_limits.items()
            ]
            self._pending_limits = {}
            await self._io(self._record_pending_limits, pending)

    def _check(
        self, live: list[tuple[Slot, TaskHandle | None]], limits: bool = False
    ) -> list[tuple[Slot, TaskHandle]]:
        exited = []
        for slot, handle in live:
            if handle is None:
                continue
            if limits:
                self._poll_limits(slot, handle)
            try:
                running = self.driver.inspect(handle).running
            except Exception:
                log.exception("runtime.inspect_failed", instance=slot.id)
                continue
            if not running:
                exited.append((slot, handle))
            try:
                slot.log.rotate_if_needed()
            except OSError:
                log.exception("runtime.log_rotate_failed", instance=slot.id)
        return exited

    async def check_now(self, slot: Slot) -> None:
        """Look at one instance at once (the gateway saw its socket refuse)."""
        handle = slot.handle
        if handle is None:
            return
        exited = await self._io(self._check, [(slot, handle)])
        for s, h in exited:
            await self._on_exit(s, h)
