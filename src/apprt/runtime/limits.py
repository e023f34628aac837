"""Limit events: an instance hit one of its limits, and the platform records it.

Kinds (:data:`~apprt.runtime.drivers.base.LIMIT_KINDS`): ``memory`` (OOM kill),
``pids`` (fork refused), ``cpu`` (throttled), ``storage`` (data volume full) come from
the driver's :meth:`~apprt.runtime.drivers.base.Driver.limit_events` counters, polled
by the supervisor's watch loop (at most every :data:`POLL_INTERVAL_S`, and once more
right before a sandbox is destroyed, so an OOM kill that ends the sandbox is seen);
``request_timeout`` (the gateway's 504) and ``egress`` (the egress proxy refused a
host) are reported as they happen (:meth:`Supervisor.note_limit
<apprt.runtime.supervisor.Supervisor.note_limit>`).

Each hit is recorded three ways by :class:`LimitRecorder`:

* ``apprt_limit_events_total{org,app,kind}`` in ``/metrics``;
* a line in the instance's log (``apprt logs ORG APP``)::

      2026-11-26T10:00:00Z apprt: limit pids: a fork refused at its process limit (32)

  at most one line per kind every :data:`LOG_EVERY_S` (the line gives the count since
  the previous one), so a spinning app does not fill its log with throttling notes;
* a row of ``runtime_limit_events``: hits of one kind within :data:`COALESCE_S` of the
  previous one add to the same row (``count``, ``first_at``, ``last_at``), so the table
  grows with episodes, not with hits. ``GET /api/v1/runtime/apps/{org}/{app}`` includes
  the latest ones and ``/limit-events`` lists them; ``apprt runtime state`` and
  ``apprt runtime limits`` print them.

Counters of a sandbox re-adopted after a platform restart are taken as the baseline
when first seen: hits while no platform process watched are not recorded.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from apprt.db.base import utcnow
from apprt.db.engine import session_scope
from apprt.manifest import Resources
from apprt.runtime.drivers.base import LIMIT_KINDS, TaskHandle
from apprt.runtime.logs import InstanceLog
from apprt.runtime.models import LimitEvent

log = structlog.get_logger(__name__)

#: Hits of one kind this close to the previous one add to its row.
COALESCE_S = 60.0
#: At most one log line per instance and kind this often.
LOG_EVERY_S = 10.0
#: How often the watch loop reads the driver's counters.
POLL_INTERVAL_S = 1.0


class InstanceLike(Protocol):
    """What the recorder needs of a supervisor's slot."""

    @property
    def id(self) -> str: ...
    @property
    def org(self) -> str | None: ...
    @property
    def app_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def log(self) -> InstanceLog: ...


class LimitEventInfo(BaseModel):
    """A limit hit (``count`` times between ``first_at`` and ``last_at``)."""

    kind: str
    count: int
    detail: str
    org: str | None
    version: str
    first_at: datetime
    last_at: datetime


def describe(kind: str, count: int, resources: Resources) -> str:
    """What a hit of a driver-reported limit means, with the limit's value."""
    times = "" if count == 1 else f" ({count} times)"
    if kind == "memory":
        return f"killed by the OOM killer at its memory limit ({resources.memory_mb} MiB){times}"
    if kind == "pids":
        what = "a fork refused" if count == 1 else f"{count} forks refused"
        return f"{what} at its process limit ({resources.max_processes})"
    if kind == "cpu":
        what = "once" if count == 1 else f"{count} times"
        return f"throttled {what} at its CPU share ({resources.cpu:g} cores)"
    if kind == "storage":
        return f"its data volume is full ({resources.storage_mb} MiB quota){times}"
    return LIMIT_KINDS.get(kind, kind) + times


@dataclass
class _Open:
    """The row hits of one (instance, kind, org) currently add to."""

    row_id: int
    last: float  # monotonic time of the last hit
    logged: float = 0.0  # monotonic time of the last log line
    unlogged: int = 0  # hits since that line


@dataclass
class _Seen:
    handle: tuple[int, float]  # (pid, started_at) of the handle counted
    counts: dict[str, int] = field(default_factory=dict)


def _handle_key(handle: TaskHandle) -> tuple[int, float]:
    return (handle.pid, handle.started_at)


class LimitRecorder:
    """Turns driver counters and gateway reports into metrics, log lines and rows."""

    def __init__(self, sessions: sessionmaker[Session], metrics: Any = None) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, str | None], _Open] = {}
        self._seen: dict[str, _Seen] = {}

    # -- driver counters ------------------------------------------------------------
    def started(self, handle: TaskHandle) -> None:
        """A sandbox started by this platform process: every hit from now on counts."""
        with self._lock:
            self._seen[handle.instance_id] = _Seen(_handle_key(handle))

    def increases(self, handle: TaskHandle, counts: dict[str, int]) -> dict[str, int]:
        """What ``counts`` (the driver's, for ``handle``) added since the last look."""
        key = _handle_key(handle)
        with self._lock:
            seen = self._seen.get(handle.instance_id)
            if seen is None or seen.handle != key:  # re-adopted: a baseline, no hits
                self._seen[handle.instance_id] = _Seen(key, dict(counts))
                return {}
            added = {k: n - seen.counts.get(k, 0) for k, n in counts.items()}
            seen.counts.update({k: max(n, seen.counts.get(k, 0)) for k, n in counts.items()})
        return {k: n for k, n in added.items() if n > 0}

    def poll(self, instance: InstanceLike, handle: TaskHandle, counts: dict[str, int]) -> None:
        """Record what the driver's ``counts`` for ``handle`` added (blocking)."""
        for kind, n in self.increases(handle, counts).items():
            self.record(instance, kind, n, describe(kind, n, instance.resources))

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._seen.pop(instance_id, None)
            for key in [k for k in self._open if k[0] == instance_id]:
                del self._open[key]

    # -- recording ------------------------------------------------------------------
    def record(
        self,
        instance: InstanceLike,
        kind: str,
        count: int = 1,
        detail: str = "",
        *,
        org: str | None = None,
    ) -> None:
        """Count, log and persist ``count`` hits of ``kind`` (blocking: from a thread)."""
        org = org or instance.org
        detail = (detail or LIMIT_KINDS.get(kind, kind))[:500]
        if self.metrics is not None:
            self.metrics.limit_event(org or "", instance.app_id, kind, count)
        now = time.monotonic()
        key = (instance.id, kind, org)
        with self._lock:  # one writer per key at a time: a hit never opens two rows
            current = self._open.get(key)
            try:
                if current is not None and now - current.last < COALESCE_S:
                    self._add(current.row_id, count, detail)
                    current.last = now
                else:
                    current = _Open(self._insert(instance, kind, count, detail, org), now)
                    self._open[key] = current
            except Exception:
                log.exception("runtime.limit_event_not_saved", instance=instance.id, kind=kind)
                return
            current.unlogged += count
            write_line = now - current.logged >= LOG_EVERY_S or current.logged == 0.0
            if write_line:
                hits, current.unlogged, current.logged = current.unlogged, 0, now
        log.warning(
            "runtime.limit", instance=instance.id, app=instance.app_id, org=org, kind=kind,
            count=count, detail=detail,
        )  # fmt: skip
        if write_line:
            self._log_line(instance, kind, detail if hits == count else f"{detail}; {hits} hits")

    def _insert(
        self, instance: InstanceLike, kind: str, count: int, detail: str, org: str | None
    ) -> int:
        with session_scope(self.sessions) as session:
            row = LimitEvent(
                instance_id=instance.id,
                org=org,
                app_id=instance.app_id,
                version=instance.version,
                kind=kind,
                count=count,
                detail=detail,
            )
            session.add(row)
            session.flush()
            return row.id

    def _add(self, row_id: int, count: int, detail: str) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(LimitEvent, row_id)
            if row is not None:
                row.count += count
                row.detail = detail
                row.last_at = utcnow()

    @staticmethod
    def _log_line(instance: InstanceLike, kind: str, detail: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{stamp} apprt: limit {kind}: {detail}\n".encode()
        with contextlib.suppress(OSError):  # O_APPEND, like the sandbox's own writes
            fd = os.open(instance.log.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    # -- reading --------------------------------------------------------------------
    def list(
        self, instance_id: str, *, org: str | None = None, limit: int = 100
    ) -> list[LimitEventInfo]:
        """The latest events of an instance, newest first (``org``: its and the sandbox's)."""
        with session_scope(self.sessions) as session:
            query = select(LimitEvent).where(LimitEvent.instance_id == instance_id)
            if org is not None:
                query = query.where(or_(LimitEvent.org.is_(None), LimitEvent.org == org))
            rows = session.scalars(query.order_by(LimitEvent.id.desc()).limit(limit))
            return [
                LimitEventInfo(
                    kind=r.kind,
                    count=r.count,
                    detail=r.detail,
                    org=r.org,
                    version=r.version,
                    first_at=r.first_at,
                    last_at=r.last_at,
                )
                for r in rows
            ]
