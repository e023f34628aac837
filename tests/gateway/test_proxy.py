"""The gateway end to end: a real platform, a real sandbox driver, the test echo app."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from apprt.accounts.models import OrgRole
from apprt.gateway.identity import load_or_create_secret
from apprt.sdk import IdentityError, verify_identity
from apprt.sdk.identity import derive_key
from tests.runtime._platform import ECHO_ID, Platform, available_drivers, running_platform

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module", params=available_drivers())
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("gateway"), request.param) as platform:
        platform.org("acme")
        platform.deploy("acme", request_timeout_s=30)
        platform.org("slow")  # for the timeout: its echo must answer within 1.5 s
        platform.deploy("slow", request_timeout_s=1.5)
        yield platform


def _data_dir(platform: Platform, org: str) -> Path:
    """The host side of the echo app's data directory (its ``APPRT_APP_DATA``)."""
    supervisor = platform.supervisor
    data_dir: Path = supervisor.get_instance(supervisor.get(org, ECHO_ID).id).data_dir
    return data_dir


def _headers(echo: dict[str, object]) -> dict[str, str]:
    return {k: v for k, v in echo["headers"]}  # type: ignore[union-attr, misc]


def test_request_reaches_the_app_with_signed_identity_and_no_spoofing(platform: Platform) -> None:
    spoofed = {
        "x-apprt-org": "evil",
        "x-apprt-user": "root",
        "x-apprt-roles": "platform_admin",
        "x-apprt-signature": "v1=00",
        "X-Forwarded-For": "6.6.6.6",
    }
    with platform.client() as client:
        response = client.get(f"/apps/acme/{ECHO_ID}/echo", params={"q": "a b"}, headers=spoofed)
    assert response.status_code == 200
    echo = response.json()
    assert echo["path"] == "/echo" and echo["query_string"] == "q=a+b"
    headers = _headers(echo)
    names = [k for k, _ in echo["headers"]]
    assert names.count("x-apprt-org") == 1 and headers["x-apprt-org"] == "acme"
    assert headers["x-apprt-user"] == "admin"
    assert headers["x-apprt-roles"] == "platform_admin"
    assert headers["x-apprt-config"] == "{}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-prefix"] == f"/apps/acme/{ECHO_ID}"
    assert "authorization" not in headers  # the caller's token never reaches the app

    # The signature verifies with the instance's key, and only with it.
    instance = platform.supervisor.get("acme", ECHO_ID).id
    key = derive_key(load_or_create_secret(platform.settings), instance)
    who = verify_identity(headers, key, method="GET", target="/echo?q=a+b")
    assert (who.org, who.user, who.roles, who.config) == ("acme", "admin", ("platform_admin",), {})
    with pytest.raises(IdentityError):
        other_key = derive_key(b"x" * 32, instance)
        verify_identity(headers, other_key, method="GET", target="/echo?q=a+b")
    with pytest.raises(IdentityError):  # bound to the request: not valid for another path
        verify_identity(headers, key, method="GET", target="/admin")
    with pytest.raises(IdentityError):  # nor later than max_age
        verify_identity(headers, key, method="GET", target="/echo?q=a+b", now=time.time() + 3600)


def test_members_get_their_role_and_strangers_a_404(platform: Platform) -> None:
    platform.org("other")
    member = platform.member_token("acme", "mia", OrgRole.MEMBER)
    stranger = platform.member_token("other", "sam", OrgRole.ORG_ADMIN)
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        ok = client.get(f"/apps/acme/{ECHO_ID}/echo", headers={"authorization": f"Bearer {member}"})
        assert ok.status_code == 200
        headers = _headers(ok.json())
        assert (headers["x-apprt-user"], headers["x-apprt-roles"]) == ("mia", "member")

        jar = {"apprt_session": member, "theme": "dark"}
        cookie = client.get(f"/apps/acme/{ECHO_ID}/echo", cookies=jar)
        assert cookie.status_code == 200  # a browser session works too...
        assert _headers(cookie.json()).get("cookie") == "theme=dark"  # ...and is not passed on

        as_stranger = {"authorization": f"Bearer {stranger}"}
        denied = client.get(f"/apps/acme/{ECHO_ID}/echo", headers=as_stranger)
        assert denied.status_code == 404 and denied.headers["content-type"] == PROBLEM_JSON
        anonymous = client.get(f"/apps/acme/{ECHO_ID}/echo")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        bad = client.get(f"/apps/acme/{ECHO_ID}/echo", headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401


def test_problem_json_for_the_gateways_own_errors(platform: Platform) -> None:
    with platform.client() as client:
        for path, status in [
            ("/apps/acme/com.test.missing/x", 404),
            ("/apps/acme/../etc/passwd", 404),
            ("/apps/NOT_AN_ORG/app/x", 404),
        ]:
            response = client.get(path)
            assert response.status_code == status, path
            assert response.headers["content-type"] == PROBLEM_JSON
            body = response.json()
            assert body["status"] == status and body["problems"] and body["instance"]
        # The app's own errors pass through untouched.
        teapot = client.get(f"/apps/acme/{ECHO_ID}/status", params={"code": 418})
        assert teapot.status_code == 418 and teapot.json() == {"code": 418}
        assert teapot.headers["content-type"] == "application/json"


def test_hop_by_hop_headers_are_not_forwarded(platform: Platform) -> None:
    with platform.client() as client:
        echo = client.get(
            f"/apps/acme/{ECHO_ID}/echo",
            headers={
                "Connection": "keep-alive, x-private",
                "X-Private": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic Zm9v",
                "X-Public": "yes",
            },
        ).json()
        sent = _headers(echo)
        for name in ("connection", "x-private", "keep-alive", "te", "proxy-authorization"):
            assert name not in sent, name
        assert sent["x-public"] == "yes"

        response = client.get(f"/apps/acme/{ECHO_ID}/hop")
        assert response.status_code == 200
        for name in ("x-secret-hop", "keep-alive", "proxy-authenticate"):
            assert name not in response.headers, name
        assert response.headers["x-kept"] == "yes"


def test_response_body_streams_without_buffering(platform: Platform) -> None:
    """The app sends a chunk every 50 ms until the client, having received the first
    bytes, releases it: a gateway buffering the response would deliver nothing before
    the end, and the app would stream until it gives up."""
    release = _data_dir(platform, "acme") / "release-stream"
    release.unlink(missing_ok=True)
    received: list[bytes] = []
    with platform.client() as client:
        params: dict[str, str | int] = {"name": release.name, "max": 400}  # 20 s
        with client.stream("GET", f"/apps/acme/{ECHO_ID}/stream-until", params=params) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                if not received:
                    release.touch()
                received.append(chunk)
    body = b"".join(received)
    assert body.endswith(b"released"), body[-16:]
    assert body.count(b"x") % 1024 == 0 and body.count(b"x") >= 1024


def test_request_body_streams_to_the_app_as_it_is_sent(platform: Platform) -> None:
    """The body's first chunk is sent alone; the rest only once the app has received
    it: a gateway buffering the request body would wait forever for its end."""
    chunk, count = b"z" * 65536, 8
    progress = _data_dir(platform, "acme") / "upload-progress"
    progress.unlink(missing_ok=True)

    def received() -> int:
        try:
            return int(progress.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def body() -> Iterator[bytes]:
        yield chunk
        deadline = time.monotonic() + 60  # a guard against hanging, not a performance bound
        while received() < len(chunk):
            assert time.monotonic() < deadline, "the app never got the first chunk alone"
            time.sleep(0.01)
        for _ in range(count - 1):
            yield chunk

    with platform.client() as client:
        params = {"progress": progress.name}
        response = client.post(f"/apps/acme/{ECHO_ID}/upload", params=params, content=body())
    assert response.status_code == 200
    assert response.json()["bytes"] == len(chunk) * count
    assert received() == len(chunk) * count


def test_large_body_with_content_length_is_forwarded(platform: Platform) -> None:
    data = b"a" * (3 * 1024 * 1024)
    with platform.client() as client:
        response = client.post(f"/apps/acme/{ECHO_ID}/echo", content=data)
    assert response.status_code == 200 and response.json()["body_length"] == len(data)


def test_timeout_is_a_504_problem(platform: Platform) -> None:
    with platform.client() as client:
        response = client.get(f"/apps/slow/{ECHO_ID}/sleep", params={"s": 10})
        assert response.status_code == 504
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "1.5 s" in response.json()["detail"]
        assert client.get(f"/apps/slow/{ECHO_ID}/healthz").status_code == 200  # still fine


def test_websocket_echo(platform: Platform) -> None:
    url = platform.url.replace("http://", "ws://") + f"/apps/acme/{ECHO_ID}/ws"
    with ws_connect(url, additional_headers=platform.headers, subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"
        assert json.loads(ws.recv()) == {"org": "acme"}  # signed identity came along
        ws.send("hello")
        assert ws.recv() == "echo:hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv() == b"\x00\x01binary"
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url).close()
    assert refused.value.response.status_code == 401


def test_metrics_count_requests_per_app_and_org(platform: Platform) -> None:
    with platform.client() as client:
        for _ in range(3):
            client.get(f"/apps/acme/{ECHO_ID}/healthz")
        client.get(f"/apps/acme/{ECHO_ID}/status", params={"code": 503})
        text = client.get("/metrics").text
    assert f'apprt_gateway_requests_total{{app="{ECHO_ID}",org="acme",status_class="2xx"}}' in text
    server_errors = f'apprt_gateway_requests_total{{app="{ECHO_ID}",org="acme",status_class="5xx"}}'
    line = next(line for line in text.splitlines() if line.startswith(server_errors))
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "apprt_gateway_request_duration_seconds_bucket" in text


# -- limits: a platform of their own, with small ones --------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("limits"),
        gateway_max_body_bytes=256 * 1024,
        gateway_rate_per_s=1,
        gateway_rate_burst=5,
    ) as platform:
        # One org per test: each has its own token bucket (per app and org).
        for org in ("acme", "rated", "busy"):
            platform.org(org)
        platform.deploy("acme")
        platform.deploy("rated")
        platform.deploy("busy", max_concurrency=2, request_timeout_s=120)
        yield platform


def test_body_over_the_limit_is_a_413(limited: Platform) -> None:
    with limited.client() as client:
        declared = client.post(f"/apps/acme/{ECHO_ID}/echo", content=b"x" * (300 * 1024))
        assert declared.status_code == 413 and declared.headers["content-type"] == PROBLEM_JSON

        def chunks() -> Iterator[bytes]:  # no Content-Length: caught while streaming
            for _ in range(10):
                yield b"y" * 65536

        streamed = client.post(f"/apps/acme/{ECHO_ID}/upload", content=chunks())
        assert streamed.status_code == 413


def test_rate_limit_is_a_429_with_retry_after(limited: Platform) -> None:
    # 5 requests saved up and 1 more per second: 8 in a row run out (unless they take
    # over 3 s; at 5 per second, as before, a loaded machine got there in 0.6 s).
    with limited.client() as client:
        statuses = [client.get(f"/apps/rated/{ECHO_ID}/healthz").status_code for _ in range(8)]
        assert statuses[:4] == [200] * 4 and statuses[-1] == 429
        limited_response = client.get(f"/apps/rated/{ECHO_ID}/healthz")
        assert limited_response.status_code == 429
        retry_after = int(limited_response.headers["retry-after"])
        assert retry_after >= 1
        assert limited_response.headers["content-type"] == PROBLEM_JSON
        time.sleep(retry_after)  # what it says is enough
        assert client.get(f"/apps/rated/{ECHO_ID}/healthz").status_code == 200


def test_concurrency_limit_is_a_429(limited: Platform) -> None:
    """Two requests held in the app (max_concurrency 2): a third one is refused."""
    release = _data_dir(limited, "busy") / "release-hold"
    release.unlink(missing_ok=True)
    slot = limited.supervisor.get_instance(limited.supervisor.get("busy", ECHO_ID).id)

    def held(_: int) -> int:
        with httpx.Client(base_url=limited.url, headers=limited.headers, timeout=120) as c:
            params: dict[str, str | int] = {"name": release.name, "max": 90}
            return c.get(f"/apps/busy/{ECHO_ID}/hold", params=params).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        try:
            holding = [pool.submit(held, i) for i in range(2)]
            limited.wait_for(lambda: slot.in_flight == 2, timeout=60, what="2 requests held")
            with limited.client() as client:
                third = client.get(f"/apps/busy/{ECHO_ID}/healthz")
        finally:
            release.touch()
        statuses = [f.result() for f in holding]
    assert third.status_code == 429 and third.headers["content-type"] == PROBLEM_JSON
    assert "max_concurrency" in third.json()["detail"]
    assert third.headers["retry-after"] == "1"
    assert statuses == [200, 200]


def test_idle_app_hibernates_and_concurrent_requests_wake_it_once(platform: Platform) -> None:
    """On each driver: idle -> Suspended (process gone), then a burst wakes it once."""
    from apprt.runtime.lifecycle import State

    org = platform.org(f"wake-{platform.settings.runtime_driver}")
    info = platform.deploy(org, max_concurrency=64)
    slot = platform.supervisor.get_instance(info.id)
    with platform.client() as client:
        before = client.get(f"/apps/{org}/{ECHO_ID}/pid").json()["boot"]
    platform.run(platform.supervisor.set_idle_policy(org, ECHO_ID, 0.3))
    platform.wait_for(lambda: slot.state is State.SUSPENDED and slot.handle is None, what="sleep")
    platform.run(platform.supervisor.set_idle_policy(org, ECHO_ID, None))
    starts = platform.app.state.metrics.cold_starts.labels(org, ECHO_ID, "wake")

    def call(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=platform.url, headers=platform.headers, timeout=30) as c:
            response = c.get(f"/apps/{org}/{ECHO_ID}/pid")
            return response.status_code, response.json()["boot"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert {status for status, _ in results} == {200}
    boots = {boot for _, boot in results}
    assert len(boots) == 1 and before not in boots  # one new process served them all
    assert starts._value.get() == 1
