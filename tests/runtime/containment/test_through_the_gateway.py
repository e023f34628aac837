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
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from apprt.manifest import Resources
from apprt.runtime.lifecycle import State
from apprt.runtime.supervisor import DeploySpec
from tests.runtime._platform import APPS, ECHO_ID, Platform, running_platform
from tests.runtime.containment.conftest import LatencyProbe

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

ORG = "acme"
BAD_ID = "com.test.misbehave"
#: The port the misbehaving app is granted (nothing listens; it asks for another one).
GRANTED_PORT = 9


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
def bystander(platform: Platform) -> Iterator[LatencyProbe]:
    """The echo app, called through the gateway (the conftest's ``report`` checks it)."""
    with _client(platform, 15) as client:

        def call() -> None:
            response = client.get(f"/apps/{ORG}/{ECHO_ID}/healthz")
            assert response.status_code == 200, response.text

        b = LatencyProbe(call, label="bystander through the gateway")
        for _ in range(5):
            b.sample()  # warm up
        yield b
    assert platform.supervisor.get(ORG, ECHO_ID).state is State.RUNNING


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


Contained = Callable[[str, str, str], tuple[httpx.Response, dict[str, Any]]]


@pytest.fixture
def contained(platform: Platform, bystander: LatencyProbe, report: Any) -> Contained:
    """``contained(attack, path, kind)``: call the misbehaving app's ``path`` while the
    bystander is probed (its latency reported as ``attack``); the response, and the
    ``kind`` limit event once it is recorded everywhere."""

    def run(attack: str, path: str, kind: str) -> tuple[httpx.Response, dict[str, Any]]:
        response, samples = bystander.during(lambda: _attack(platform, path))
        report(attack, samples)
        return response, _assert_recorded(platform, kind)

    return run


def test_fork_bomb_is_capped_and_recorded(contained: Contained) -> None:
    response, event = contained("fork bomb", "/forkbomb", "pids")
    result = _result(response)
    assert result["errno"] is not None and result["forked"] < 24, result
    assert "process limit (24)" in event["detail"]


def test_cpu_spin_is_throttled_and_recorded(contained: Contained) -> None:
    response, event = contained("cpu spin", "/spin?s=1", "cpu")
    _result(response)
    assert "at its CPU share (0.25 cores)" in event["detail"]


def test_disk_fill_stops_at_the_quota_and_is_recorded(contained: Contained) -> None:
    response, event = contained("disk fill", "/fill", "storage")
    result = _result(response)
    assert result["errno"] is not None and result["written"] <= 8 << 20, result
    assert "data volume is full (8 MiB quota)" in event["detail"]


def test_request_past_its_time_limit_is_a_504_and_recorded(contained: Contained) -> None:
    response, event = contained("request timeout", "/sleep?s=4", "request_timeout")
    assert response.status_code == 504, response.text
    assert "GET /apps/" in event["detail"] and "within 2 s" in event["detail"]


def test_egress_to_a_host_not_granted_is_refused_and_recorded(contained: Contained) -> None:
    response, event = contained("egress refused", "/egress?port=10", "egress")
    assert _result(response).startswith("HTTP/1.1 403"), response.text
    assert "127.0.0.1:10" in event["detail"]


def test_memory_hog_is_oom_killed_recorded_and_restarted(
    platform: Platform, contained: Contained
) -> None:
    response, event = contained("memory hog", "/eat", "memory")
    assert response.status_code == 502  # the sandbox died mid-request
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
