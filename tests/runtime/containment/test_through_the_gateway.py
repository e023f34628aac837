"""Containment through the whole platform: a misbehaving app and a bystander app on one
real ``apprt serve``-like platform (bwrap driver), both reached through the gateway.

Each attack (fork bomb, CPU spin, disk fill, memory hog, a request past its time limit,
egress to a host not granted) must be limited, and recorded as a limit event three
ways: ``apprt_limit_events_total`` in ``/metrics``, a line in the app's log, a row the
API (``/limit-events``, and the instance's state) returns. Meanwhile the bystander is
called through the gateway every 10 ms; it must answer every call, and its latency
(baseline, and during each attack) is reported (``record_property`` and stdout).

Targets are 127.0.0.1 only; the whole module runs in well under a minute.
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from apprt.manifest import Resources
from apprt.runtime.lifecycle import State
from apprt.runtime.supervisor import DeploySpec
from tests.runtime._platform import APPS, ECHO_ID, Platform, running_platform

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

T = TypeVar("T")
ORG = "acme"
BAD_ID = "com.test.misbehave"
#: p50 latency of the bystander during an attack, relative to its baseline p50.
MAX_SLOWDOWN = 10.0
#: The port the misbehaving app is granted (nothing listens; it asks for another one).
GRANTED_PORT = 9


@dataclass
class Bystander:
    """The echo app, called through the gateway."""

    client: httpx.Client
    baseline: list[float] = field(default_factory=list)

    def sample(self) -> float:
        start = time.perf_counter()
        response = self.client.get(f"/apps/{ORG}/{ECHO_ID}/healthz")
        assert response.status_code == 200, response.text
        return time.perf_counter() - start

    def during(self, attack: Callable[[], T], *, min_seconds: float = 0.5) -> tuple[T, list[float]]:
        """Run ``attack`` while calling the bystander every 10 ms; its result and samples."""
        samples: list[float] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                try:
                    samples.append(self.sample())
                except BaseException as exc:  # reported below: the bystander must not fail
                    failures.append(exc)
                stop.wait(0.01)

        thread = threading.Thread(target=probe, daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            result = attack()
            left = min_seconds - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)
        finally:
            stop.set()
            thread.join(15)
        assert not failures, f"the bystander failed during the attack: {failures[:3]}"
        assert samples, "no bystander sample during the attack"
        return result, samples


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("contain"), "bwrap") as platform:
        platform.org(ORG)
        platform.deploy(ORG, request_timeout_s=10)  # the bystander
        code = platform.settings.data_dir.parent / "code" / "misbehave"
        shutil.copytree(APPS / "misbehave", code)
        spec = DeploySpec(
            app_id=BAD_ID,
            version="1.0.0",
            code_dir=code,
            entry="misbehave.main:app",
            org=ORG,
            resources=Resources(
                memory_mb=96,
                cpu=0.25,
                max_processes=24,
                storage_mb=8,
                request_timeout_s=2,
            ),
            trusted=False,  # the bwrap driver enforces every limit: no refusal
            grants=(f"network:127.0.0.1:{GRANTED_PORT}",),
        )
        platform.run(platform.supervisor.deploy(spec))
        platform.run(platform.supervisor.activate(ORG, BAD_ID))
        yield platform


@pytest.fixture(scope="module")
def bystander(platform: Platform) -> Iterator[Bystander]:
    with _client(platform, 15) as client:
        b = Bystander(client)
        for _ in range(5):
            b.sample()  # warm up
        _, b.baseline = b.during(lambda: None, min_seconds=0.5)
        yield b
    assert platform.supervisor.get(ORG, ECHO_ID).state is State.RUNNING


@pytest.fixture
def report(
    bystander: Bystander, record_property: Callable[[str, object], None]
) -> Callable[[str, list[float]], None]:
    def check(attack: str, samples: list[float]) -> None:
        base = statistics.median(bystander.baseline)
        during = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]
        ratio = during / base
        record_property("bystander_baseline_p50_ms", round(base * 1000, 2))
        record_property("bystander_attack_p50_ms", round(during * 1000, 2))
        record_property("bystander_attack_p95_ms", round(p95 * 1000, 2))
        record_property("bystander_attack_max_ms", round(max(samples) * 1000, 2))
        record_property("bystander_samples", len(samples))
        print(
            f"\n[{attack}] bystander through the gateway: p50 {base * 1000:.2f} ms -> "
            f"{during * 1000:.2f} ms during the attack (x{ratio:.2f}, p95 {p95 * 1000:.1f} ms, "
            f"max {max(samples) * 1000:.1f} ms, {len(samples)} calls, all 200)"
        )
        assert ratio <= MAX_SLOWDOWN, f"bystander slowed x{ratio:.1f} during {attack}"

    return check


def _client(platform: Platform, timeout: float) -> httpx.Client:
    return httpx.Client(base_url=platform.url, headers=platform.headers, timeout=timeout)


def _attack(platform: Platform, path: str, timeout: float = 30) -> httpx.Response:
    with _client(platform, timeout) as client:
        return client.get(f"/apps/{ORG}/{BAD_ID}{path}")


def _result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _events(platform: Platform, kind: str) -> list[dict[str, Any]]:
    with platform.client() as client:
        response = client.get(f"/api/v1/runtime/apps/{ORG}/{BAD_ID}/limit-events")
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["kind"] == kind]


def _assert_recorded(platform: Platform, kind: str, timeout: float = 10) -> dict[str, Any]:
    """The event of ``kind`` is in the API, the metrics and the app's log; the row."""
    platform.wait_for(lambda: _events(platform, kind), timeout, f"a {kind} limit event")
    event = _events(platform, kind)[0]
    assert event["count"] >= 1 and event["org"] == ORG and event["version"] == "1.0.0"
    with platform.client() as client:
        metrics = client.get("/metrics").text
        state = client.get(f"/api/v1/runtime/apps/{ORG}/{BAD_ID}").json()
        logs = client.get(f"/api/v1/runtime/apps/{ORG}/{BAD_ID}/logs", params={"tail": 1000})
    line = f'apprt_limit_events_total{{app="{BAD_ID}",kind="{kind}",org="{ORG}"}}'
    assert line in metrics, [m for m in metrics.splitlines() if "limit_events" in m]
    assert kind in {e["kind"] for e in state["limit_events"]}
    assert f"apprt: limit {kind}: " in logs.text, logs.text[-2000:]
    print(f"recorded: {event['kind']} x{event['count']}: {event['detail']}")
    return event


def test_fork_bomb_is_capped_and_recorded(
    platform: Platform, bystander: Bystander, report: Any
) -> None:
    result, samples = bystander.during(lambda: _result(_attack(platform, "/forkbomb")))
    report("fork bomb", samples)
    assert result["errno"] is not None and result["forked"] < 24, result
    event = _assert_recorded(platform, "pids")
    assert "process limit (24)" in event["detail"]


def test_cpu_spin_is_throttled_and_recorded(
    platform: Platform, bystander: Bystander, report: Any
) -> None:
    _, samples = bystander.during(lambda: _result(_attack(platform, "/spin?s=1")))
    report("cpu spin", samples)
    event = _assert_recorded(platform, "cpu")
    assert "at its CPU share (0.25 cores)" in event["detail"]


def test_disk_fill_stops_at_the_quota_and_is_recorded(
    platform: Platform, bystander: Bystander, report: Any
) -> None:
    result, samples = bystander.during(lambda: _result(_attack(platform, "/fill")))
    report("disk fill", samples)
    assert result["errno"] is not None and result["written"] <= 8 << 20, result
    event = _assert_recorded(platform, "storage")
    assert "data volume is full (8 MiB quota)" in event["detail"]


def test_request_past_its_time_limit_is_a_504_and_recorded(
    platform: Platform, bystander: Bystander, report: Any
) -> None:
    response, samples = bystander.during(lambda: _attack(platform, "/sleep?s=4"))
    report("request timeout", samples)
    assert response.status_code == 504, response.text
    event = _assert_recorded(platform, "request_timeout")
    assert "GET /apps/" in event["detail"] and "within 2 s" in event["detail"]


def test_egress_to_a_host_not_granted_is_refused_and_recorded(
    platform: Platform, bystander: Bystander, report: Any
) -> None:
    result, samples = bystander.during(lambda: _result(_attack(platform, "/egress?port=10")))
    report("egress refused", samples)
    assert result.startswith("HTTP/1.1 403"), result
    event = _assert_recorded(platform, "egress")
    assert "127.0.0.1:10" in event["detail"]


def test_memory_hog_is_oom_killed_recorded_and_restarted(
    platform: Platform, bystander: Bystander, report: Any
) -> None:
    def attack() -> int:
        return _attack(platform, "/eat").status_code

    status, samples = bystander.during(attack)
    report("memory hog", samples)
    assert status == 502  # the sandbox died mid-request
    event = _assert_recorded(platform, "memory")
    assert "OOM killer at its memory limit (96 MiB)" in event["detail"]
    platform.wait_for(
        lambda: platform.supervisor.get(ORG, BAD_ID).state is State.RUNNING, 15, "the restart"
    )
    assert _result(_attack(platform, "/")) is True


def test_the_cli_shows_the_limits_an_app_hit(platform: Platform, apprt: Callable[..., Any]) -> None:
    assert _result(_attack(platform, "/egress?port=11")).startswith("HTTP/1.1 403")
    _assert_recorded(platform, "egress")
    auth = ("--url", platform.url, "--token", platform.token)
    listed = apprt("runtime", "limits", ORG, BAD_ID, "--json", *auth)
    assert listed.exit_code == 0, listed.stderr
    assert "egress" in {e["kind"] for e in listed.json()}
    table = apprt("runtime", "limits", ORG, BAD_ID, *auth)
    assert "limits hit" in table.stdout and "egress" in table.stdout
    state = apprt("runtime", "state", ORG, BAD_ID, *auth)
    assert state.exit_code == 0 and "limits hit" in state.stdout
    logs = apprt("logs", ORG, BAD_ID, "--tail", "1000", *auth)
    assert "apprt: limit egress: connection to 127.0.0.1:" in logs.stdout  # one line per 10 s
