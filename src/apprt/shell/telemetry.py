"""Frontend monitoring: what browsers report about each app's frontend.

The shell batches measurements and sends them to ``POST /api/v1/telemetry/frontend``;
they become Prometheus metrics (on the platform's registry, so ``/metrics`` shows them)
and a short summary per app that the shell's administration screen reads
(``GET /api/v1/telemetry/frontend/{org}``).

==========================================  ===============================================
``apprt_frontend_load_seconds``             navigation to the module imported, by org, app
``apprt_frontend_mount_seconds``            ``mount(el, ctx)`` until it settled
``apprt_frontend_errors_total``             failures by org, app and kind (``load``,
                                            ``integrity``, ``not_found``, ``mount``,
                                            ``unmount``, ``timeout``, ``runtime``,
                                            ``dependency``)
``apprt_frontend_long_tasks_total``         main-thread tasks over 50 ms attributed to it
``apprt_frontend_long_task_seconds_total``  their total duration
``apprt_frontend_suspected_leaks_total``    mount/unmount cycles flagged as leaking
``apprt_frontend_heap_growth_bytes``        heap growth per cycle at the last leak check
==========================================  ===============================================

Labels are bounded: a report for an app that is not installed in the organization is
dropped (counted in ``apprt_frontend_reports_dropped_total``), so a browser cannot
create series at will.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, Field

LOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ERROR_KINDS = (
    "load",
    "integrity",
    "not_found",
    "mount",
    "unmount",
    "timeout",
    "runtime",
    "dependency",
)
MAX_EVENTS = 200

Kind = Literal["load", "mount", "error", "longtask", "leak"]


class TelemetryEvent(BaseModel):
    app: str = Field(max_length=128)
    kind: Kind
    ms: float | None = Field(None, ge=0, le=3_600_000)
    error: str | None = Field(None, max_length=32, description="error kind, for kind=error")
    message: str | None = Field(None, max_length=500)
    retained: int | None = Field(None, ge=0, le=10_000, description="leak: roots kept alive")
    cycles: int | None = Field(None, ge=0, le=1_000_000, description="leak: cycles observed")
    growth_bytes: float | None = Field(None, description="leak: heap growth per cycle")


class TelemetryIn(BaseModel):
    org: str = Field(max_length=63)
    events: list[TelemetryEvent] = Field(max_length=MAX_EVENTS)


@dataclass
class AppHealth:
    """The latest of what browsers said about one app in one organization."""

    loads: int = 0
    mounts: int = 0
    last_load_ms: float | None = None
    last_mount_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    last_error_at: float | None = None
    long_tasks: int = 0
    long_task_ms: float = 0.0
    leak_suspected: bool = False
    leak: dict[str, Any] | None = None
    updated_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "loads": self.loads,
            "mounts": self.mounts,
            "last_load_ms": self.last_load_ms,
            "last_mount_ms": self.last_mount_ms,
            "errors": dict(self.errors),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "long_tasks": self.long_tasks,
            "long_task_ms": round(self.long_task_ms, 1),
            "leak_suspected": self.leak_suspected,
            "leak": self.leak,
            "updated_at": self.updated_at,
        }


class FrontendTelemetry:
    """The metrics and per-app summaries; thread-safe (handlers run in a pool)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["org", "app"]
        self.load = Histogram(
            "apprt_frontend_load_seconds",
            "Time from navigation to the app's frontend module imported",
            labels,
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self.mount = Histogram(
            "apprt_frontend_mount_seconds",
            "Time taken by the frontend's mount(el, ctx)",
            labels,
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "apprt_frontend_errors",
            "Frontend failures (load, integrity, not_found, mount, unmount, timeout, runtime)",
            [*labels, "kind"],
            registry=registry,
        )
        self.long_tasks = Counter(
            "apprt_frontend_long_tasks",
            "Main-thread tasks over 50 ms attributed to the frontend",
            labels,
            registry=registry,
        )
        self.long_task_seconds = Counter(
            "apprt_frontend_long_task_seconds",
            "Total duration of those long tasks",
            labels,
            registry=registry,
        )
        self.leaks = Counter(
            "apprt_frontend_suspected_leaks",
            "Mount/unmount cycles flagged as leaking memory",
            labels,
            registry=registry,
        )
        self.heap_growth = Gauge(
            "apprt_frontend_heap_growth_bytes",
            "Heap growth per mount/unmount cycle at the last leak check",
            labels,
            registry=registry,
        )
        self.dropped = Counter(
            "apprt_frontend_reports_dropped",
            "Reports about apps not installed in the organization",
            registry=registry,
        )
        self._lock = threading.Lock()
        self._health: dict[tuple[str, str], AppHealth] = {}

    def record(self, org: str, installed: set[str], events: list[TelemetryEvent]) -> int:
        """Apply ``events`` reported for ``org``; returns how many were accepted."""
        accepted = 0
        now = time.time()
        with self._lock:
            for event in events:
                if event.app not in installed:
                    self.dropped.inc()
                    continue
                accepted += 1
                health = self._health.setdefault((org, event.app), AppHealth())
                health.updated_at = now
                self._apply(org, event, health, now)
        return accepted

    def _apply(self, org: str, event: TelemetryEvent, health: AppHealth, now: float) -> None:
        seconds = (event.ms or 0.0) / 1000.0
        if event.kind == "load":
            health.loads += 1
            health.last_load_ms = event.ms
            self.load.labels(org, event.app).observe(seconds)
        elif event.kind == "mount":
            health.mounts += 1
            health.last_mount_ms = event.ms
            self.mount.labels(org, event.app).observe(seconds)
        elif event.kind == "error":
            kind = event.error if event.error in ERROR_KINDS else "runtime"
            assert kind is not None
            health.errors[kind] = health.errors.get(kind, 0) + 1
            health.last_error = f"{kind}: {event.message or ''}".strip()
            health.last_error_at = now
            self.errors.labels(org, event.app, kind).inc()
        elif event.kind == "longtask":
            health.long_tasks += 1
            health.long_task_ms += event.ms or 0.0
            self.long_tasks.labels(org, event.app).inc()
            self.long_task_seconds.labels(org, event.app).inc(seconds)
        elif event.kind == "leak":
            health.leak_suspected = True
            health.leak = {
                "retained": event.retained,
                "cycles": event.cycles,
                "growth_bytes": event.growth_bytes,
                "message": event.message,
            }
            self.leaks.labels(org, event.app).inc()
            if event.growth_bytes is not None:
                self.heap_growth.labels(org, event.app).set(event.growth_bytes)

    def summary(self, org: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {app: h.as_dict() for (o, app), h in sorted(self._health.items()) if o == org}

    def forget(self, org: str, app: str) -> None:
        with self._lock:
            self._health.pop((org, app), None)
