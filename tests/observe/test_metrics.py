"""Metrics at /metrics: the registry per platform, the instance collector, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apprt.observe.metrics import Metrics
from apprt.runtime.drivers.base import TaskStats
from apprt.runtime.lifecycle import State
from tests.runtime._platform import ECHO_ID, Platform, running_platform


@dataclass
class Sample:
    id: str
    org: str
    app_id: str
    version: str
    state: State
    stats: TaskStats | None
    in_flight: int = 0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(text: str, name: str, **labels: str) -> float:
    for (sample, sample_labels), value in _samples(text).items():
        if sample == name and set(labels.items()) <= set(sample_labels):
            return value
    raise AssertionError(f"no {name} {labels} in the metrics")


def test_requests_cold_starts_and_instances_render() -> None:
    metrics = Metrics()
    metrics.request("acme", "com.x", 200, 0.002)
    metrics.request("acme", "com.x", 503, 0.5)
    metrics.error("acme", "com.x", "apptimeout")
    metrics.cold_start("acme", "com.x", 0.03, "wake")
    metrics.crash("acme", "com.x")
    stats = TaskStats(memory_bytes=5_000_000, memory_limit_bytes=128 << 20, cpu_seconds=1.5, pids=3)
    metrics.set_instance_source(
        lambda: [
            Sample("i1", "acme", "com.x", "1.0.0", State.RUNNING, stats, in_flight=2),
            Sample("i2", "beta", "com.y", "2.0.0", State.SUSPENDED, None),
        ]
    )
    text = metrics.render().decode()
    assert _value(text, "apprt_gateway_requests_total", org="acme", status_class="2xx") == 1
    assert _value(text, "apprt_gateway_requests_total", org="acme", status_class="5xx") == 1
    assert _value(text, "apprt_gateway_request_duration_seconds_count", org="acme") == 2
    assert _value(text, "apprt_gateway_errors_total", reason="apptimeout") == 1
    assert _value(text, "apprt_cold_starts_total", kind="wake") == 1
    assert _value(text, "apprt_cold_start_duration_seconds_sum", kind="wake") == pytest.approx(0.03)
    assert _value(text, "apprt_instance_crashes_total", app="com.x") == 1
    assert _value(text, "apprt_instance_memory_bytes", instance="i1") == 5_000_000
    assert _value(text, "apprt_instance_memory_limit_bytes", instance="i1") == 128 << 20
    assert _value(text, "apprt_instance_cpu_seconds_total", instance="i1") == 1.5
    assert _value(text, "apprt_instance_pids", instance="i1") == 3
    assert _value(text, "apprt_instance_in_flight", instance="i1") == 2
    assert _value(text, "apprt_instance_state", instance="i1", state="running") == 1
    assert _value(text, "apprt_instance_state", instance="i1", state="suspended") == 0
    assert _value(text, "apprt_instance_state", instance="i2", state="suspended") == 1
    assert _value(text, "apprt_instances", state="running") == 1
    assert _value(text, "apprt_instances", state="failed") == 0
    with pytest.raises(AssertionError):  # a suspended instance has no memory figure
        _value(text, "apprt_instance_memory_bytes", instance="i2")


def test_each_platform_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.request("acme", "com.x", 200, 0.001)
    assert "com.x" not in two.render().decode()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("metrics")) as platform:
        platform.org("acme")
        platform.deploy("acme")
        yield platform


def test_metrics_endpoint_reports_the_running_instance(platform: Platform) -> None:
    with platform.client() as client:
        assert client.get(f"/apps/acme/{ECHO_ID}/healthz").status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    instance = platform.supervisor.get("acme", ECHO_ID).id
    assert _value(text, "apprt_instance_state", instance=instance, state="running") == 1
    assert _value(text, "apprt_instance_memory_bytes", instance=instance) > 1_000_000
    assert _value(text, "apprt_instance_pids", instance=instance) >= 1
    assert _value(text, "apprt_cold_starts_total", app=ECHO_ID, kind="activation") == 1
    assert _value(text, "apprt_cold_start_duration_seconds_count", app=ECHO_ID) == 1
    assert _value(text, "apprt_gateway_requests_total", app=ECHO_ID, status_class="2xx") >= 1


def test_metrics_need_no_token_and_leave_the_api_alone(platform: Platform) -> None:
    import httpx

    response: Any = httpx.get(f"{platform.url}/metrics", timeout=30)
    assert response.status_code == 200
    assert "apprt_instances" in response.text
