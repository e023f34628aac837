"""Prometheus metrics at ``GET /metrics`` (text exposition format).

One :class:`Metrics` per platform app (its own ``CollectorRegistry``, so two apps in one
process, e.g. in tests, never share counters). The gateway and the supervisor report
events to it; instance figures (state, memory, CPU, pids) are read from the supervisor
and the driver's ``stats`` when Prometheus scrapes, by :class:`InstanceCollector`.

==========================================  ==============================================
``apprt_gateway_requests_total``            requests by org, app and status class (2xx...)
``apprt_gateway_request_duration_seconds``  latency histogram by org and app
``apprt_gateway_errors_total``              gateway-made errors by org, app and reason
``apprt_cold_starts_total``                 starts by org, app and kind (wake, activation,
                                            restart, update, recover)
``apprt_cold_start_duration_seconds``       time from the start decision to Running
``apprt_instance_crashes_total``            sandbox exits that were not asked for
``apprt_limit_events_total``                limit hits by org, app and kind (memory, pids,
                                            cpu, storage, request_timeout, egress)
``apprt_instance_state``                    1 for the instance's state, 0 for the others
``apprt_instances``                         instances per state
``apprt_instance_memory_bytes``             memory in use (cgroup), and its limit
``apprt_instance_cpu_seconds_total``        CPU time used
``apprt_instance_pids``                     processes and threads
``apprt_instance_in_flight``                requests being served
==========================================  ==============================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
COLD_START_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class InstanceSampleLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def org(self) -> str: ...
    @property
    def app_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def state(self) -> Any: ...
    @property
    def stats(self) -> Any: ...
    @property
    def in_flight(self) -> int: ...


InstanceSource = Callable[[], Sequence[InstanceSampleLike]]


class InstanceCollector(Collector):
    """Instance figures, read at scrape time from ``source`` (the supervisor)."""

    def __init__(self, states: Sequence[str]) -> None:
        self.states = tuple(states)
        self.source: InstanceSource | None = None

    def collect(self) -> Iterator[Metric]:
        samples = self.source() if self.source is not None else []
        labels = ["instance", "org", "app", "version"]
        state = GaugeMetricFamily(
            "apprt_instance_state",
            "1 for the instance's lifecycle state",
            labels=[*labels, "state"],
        )
        count = GaugeMetricFamily("apprt_instances", "Instances per state", labels=["state"])
        memory = GaugeMetricFamily(
            "apprt_instance_memory_bytes", "Memory in use by the sandbox", labels=labels
        )
        limit = GaugeMetricFamily(
            "apprt_instance_memory_limit_bytes", "Memory limit of the sandbox", labels=labels
        )
        cpu = CounterMetricFamily(
            "apprt_instance_cpu_seconds", "CPU time used by the sandbox", labels=labels
        )
        pids = GaugeMetricFamily(
            "apprt_instance_pids", "Processes and threads in the sandbox", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "apprt_instance_in_flight", "Requests being served", labels=labels
        )
        per_state = dict.fromkeys(self.states, 0)
        for s in samples:
            values = [s.id, s.org, s.app_id, s.version]
            current = str(getattr(s.state, "value", s.state))
            per_state[current] = per_state.get(current, 0) + 1
            for name in self.states:
                state.add_metric([*values, name], 1.0 if name == current else 0.0)
            in_flight.add_metric(values, float(s.in_flight))
            stats = s.stats
            if stats is None:
                continue
            memory.add_metric(values, float(stats.memory_bytes))
            if stats.memory_limit_bytes is not None:
                limit.add_metric(values, float(stats.memory_limit_bytes))
            cpu.add_metric(values, float(stats.cpu_seconds))
            pids.add_metric(values, float(stats.pids))
        for name, n in per_state.items():
            count.add_metric([name], float(n))
        yield from (state, count, memory, limit, cpu, pids, in_flight)


class Metrics:
    """The platform's metrics; ``render()`` is the ``/metrics`` body."""

    def __init__(self, states: Sequence[str] = ()) -> None:
        if not states:
            from apprt.runtime.lifecycle import State

            states = [s.value for s in State]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "apprt_gateway_requests",
            "Requests through the gateway",
            ["org", "app", "status_class"],
            registry=r,
        )
        self.latency = Histogram(
            "apprt_gateway_request_duration_seconds",
            "Time from request to response end through the gateway",
            ["org", "app"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "apprt_gateway_errors",
            "Errors made by the gateway (app down, timeout, limits...)",
            ["org", "app", "reason"],
            registry=r,
        )
        self.cold_starts = Counter(
            "apprt_cold_starts",
            "Sandbox starts (wake, activation, restart, update, recover)",
            ["org", "app", "kind"],
            registry=r,
        )
        self.cold_start_seconds = Histogram(
            "apprt_cold_start_duration_seconds",
            "Time from the decision to start to the instance Running",
            ["org", "app", "kind"],
            buckets=COLD_START_BUCKETS,
            registry=r,
        )
        self.crashes = Counter(
            "apprt_instance_crashes", "Sandbox exits nobody asked for", ["org", "app"], registry=r
        )
        self.limit_events = Counter(
            "apprt_limit_events",
            "Limits an instance hit: memory (OOM kill), pids (fork refused), cpu (throttled), "
            "storage (data volume full), request_timeout (504), egress (host refused)",
            ["org", "app", "kind"],
            registry=r,
        )
        self.instances = InstanceCollector(states)
        r.register(self.instances)
        self._request_children: dict[tuple[str, str], tuple[list[Any], Any]] = {}

    def set_instance_source(self, source: InstanceSource | None) -> None:
        self.instances.source = source

    def request(self, org: str, app: str, status: int, seconds: float) -> None:
        children = self._request_children.get((org, app))
        if children is None:
            counters = [self.requests.labels(org, app, c) for c in STATUS_CLASSES]
            children = (counters, self.latency.labels(org, app))
            self._request_children[(org, app)] = children
        counters, histogram = children
        counters[min(max(status // 100, 1), 5) - 1].inc()
        histogram.observe(seconds)

    def error(self, org: str, app: str, reason: str) -> None:
        self.errors.labels(org, app, reason).inc()

    def cold_start(self, org: str, app: str, seconds: float, kind: str) -> None:
        self.cold_starts.labels(org, app, kind).inc()
        self.cold_start_seconds.labels(org, app, kind).observe(seconds)

    def crash(self, org: str, app: str) -> None:
        self.crashes.labels(org, app).inc()

    def limit_event(self, org: str, app: str, kind: str, count: int = 1) -> None:
        self.limit_events.labels(org, app, kind).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# -- component: GET /metrics and app.state.metrics ------------------------------------

router = APIRouter(tags=["observe"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.metrics = Metrics()
    yield
